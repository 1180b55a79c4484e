package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/preview"
)

func TestCRDiffWrite(t *testing.T) {
	d := &preview.CRDiff{CR: "Widget/ns/w", Children: []preview.ChildDiff{
		{Object: "ConfigMap/ns/new", Action: apply.ActionCreate},
		{Object: "Deployment/ns/w", Action: apply.ActionConfigure, Diff: "--- a\n+++ b\n@@ -1 +1 @@\n-  replicas: 3\n+  replicas: 4\n"},
		{Object: "ConfigMap/ns/old", Action: apply.ActionDelete},
		{Object: "ConfigMap/ns/kept", Action: apply.ActionOrphan},
		{Object: "ConfigMap/ns/theirs", Action: preview.ActionRefuse, Owner: "field managers kubectl-create"},
	}}
	var plain bytes.Buffer
	if err := writeDiff(&plain, d, false); err != nil {
		t.Fatal(err)
	}
	want := `Widget/ns/w: ConfigMap/ns/new would be created
Widget/ns/w: Deployment/ns/w would change
--- a
+++ b
@@ -1 +1 @@
-  replicas: 3
+  replicas: 4
Widget/ns/w: ConfigMap/ns/old would be pruned
Widget/ns/w: ConfigMap/ns/kept would be orphaned (kept, without cuerator's labels)
Widget/ns/w: ConfigMap/ns/theirs exists and is owned by field managers kubectl-create (annotate it cuerator.dev/adopt=true to let this CR adopt it); the operator would leave it and stall
`
	if plain.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", plain.String(), want)
	}

	var colored bytes.Buffer
	if err := writeDiff(&colored, d, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{colorRed + "-  replicas: 3" + colorReset, colorGreen + "+  replicas: 4" + colorReset, colorCyan + "@@ -1 +1 @@" + colorReset} {
		if !strings.Contains(colored.String(), want) {
			t.Errorf("coloured report lacks %q:\n%q", want, colored.String())
		}
	}
}

func TestCRDiffUnchangedWritesNothing(t *testing.T) {
	d := &preview.CRDiff{CR: "Widget/ns/w"}
	var out bytes.Buffer
	if err := writeDiff(&out, d, true); err != nil {
		t.Fatal(err)
	}
	if d.Changed() || out.Len() != 0 {
		t.Errorf("unchanged CR: Changed()=%v, output %q", d.Changed(), out.String())
	}
}

func TestColorWanted(t *testing.T) {
	for _, c := range []struct {
		mode     string
		terminal bool
		noColor  string
		want     bool
	}{
		{"auto", true, "", true},
		{"auto", false, "", false},
		{"auto", true, "1", false},
		{"always", true, "1", true}, // a flag outranks NO_COLOR
		{"always", false, "", true},
		{"never", true, "", false},
	} {
		got, err := colorWanted(c.mode, c.terminal, c.noColor)
		if err != nil || got != c.want {
			t.Errorf("--color=%s, terminal %v, NO_COLOR=%q: colour %v (%v), want %v", c.mode, c.terminal, c.noColor, got, err, c.want)
		}
	}
	if _, err := colorWanted("yes", true, ""); err == nil || !strings.Contains(err.Error(), "--color") {
		t.Errorf("--color=yes: error %v, want one naming the flag", err)
	}
}
