package engine

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func configMap(data map[string]any, meta map[string]any) *unstructured.Unstructured {
	m := map[string]any{"name": "c", "namespace": "ns"}
	for k, v := range meta {
		m[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data,
	}}
}

// What every write changes, and status, which an apply does not set, are
// no difference.
func TestUnifiedDiffIgnoresWhatEveryWriteChanges(t *testing.T) {
	live := configMap(map[string]any{"k": "v"}, map[string]any{
		"resourceVersion": "7", "generation": int64(1), "uid": "u1",
		"creationTimestamp": "2026-01-01T00:00:00Z",
		"managedFields":     []any{map[string]any{"manager": "cuerator"}},
	})
	live.Object["status"] = map[string]any{"phase": "old"}
	after := configMap(map[string]any{"k": "v"}, map[string]any{
		"resourceVersion": "8", "generation": int64(2), "uid": "u1",
		"managedFields": []any{map[string]any{"manager": "kubectl"}},
	})
	diff, err := unifiedDiff("ConfigMap/ns/c", live, after)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Errorf("diff of objects that differ only in bookkeeping:\n%s", diff)
	}
}

func TestUnifiedDiffShowsChangedFields(t *testing.T) {
	live := configMap(map[string]any{"greeting": "hello", "same": "x"}, nil)
	after := configMap(map[string]any{"greeting": "hi", "same": "x"}, nil)
	diff, err := unifiedDiff("ConfigMap/ns/c", live, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--- ConfigMap/ns/c (live)\n",
		"+++ ConfigMap/ns/c (after apply)\n",
		"-  greeting: hello\n",
		"+  greeting: hi\n",
		"   same: x\n",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
}

func TestCRDiffWrite(t *testing.T) {
	d := &CRDiff{CR: "Widget/ns/w", Children: []ChildDiff{
		{Object: "ConfigMap/ns/new", Action: ActionCreate},
		{Object: "Deployment/ns/w", Action: ActionChange, Diff: "--- a\n+++ b\n@@ -1 +1 @@\n-  replicas: 3\n+  replicas: 4\n"},
		{Object: "ConfigMap/ns/old", Action: ActionPrune},
		{Object: "ConfigMap/ns/kept", Action: ActionOrphan},
		{Object: "ConfigMap/ns/theirs", Action: ActionRefuse, Owner: "field managers kubectl-create"},
	}}
	var plain bytes.Buffer
	if err := d.Write(&plain, false); err != nil {
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
	if err := d.Write(&colored, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{colorRed + "-  replicas: 3" + colorReset, colorGreen + "+  replicas: 4" + colorReset, colorCyan + "@@ -1 +1 @@" + colorReset} {
		if !strings.Contains(colored.String(), want) {
			t.Errorf("coloured report lacks %q:\n%q", want, colored.String())
		}
	}
}

func TestCRDiffUnchangedWritesNothing(t *testing.T) {
	d := &CRDiff{CR: "Widget/ns/w"}
	var out bytes.Buffer
	if err := d.Write(&out, true); err != nil {
		t.Fatal(err)
	}
	if d.Changed() || out.Len() != 0 {
		t.Errorf("unchanged CR: Changed()=%v, output %q", d.Changed(), out.String())
	}
}
