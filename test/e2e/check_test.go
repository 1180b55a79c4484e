package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cuerator check --preflight renders the live Widgets with a candidate
// template module and lists the one it would refuse, the one whose child
// would change and the one whose child would be pruned; with --against the
// current module it also names the breaking change. The cluster is left as
// it was.
func TestCheckPreflight(t *testing.T) {
	startWidgets(t)
	bin := buildCuerator(t)
	current, err := filepath.Abs(widgetTemplates)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "preflight")
	widgets := map[string]string{
		"same":       "  withConfig: false\n",
		"big":        "  withConfig: false\n  replicas: 10\n",
		"configured": "  withConfig: true\n",
		"pruned":     "  withConfig: true\n  retained: true\n",
	}
	for name, spec := range widgets {
		applyWidget(t, ns, name, spec)
	}
	for name := range widgets {
		waitReconciled(t, ns, "widget/"+name)
	}

	t.Run("the running templates", func(t *testing.T) {
		r := runCuerator(t, bin, nil, "check", "--templates", current, "--preflight", "-n", ns)
		r.expect(t, 0)
		if want := "preflight: 4 CRs: 0 would fail, 0 would change children, 0 would prune children, 4 unchanged\n"; r.stdout != want {
			t.Errorf("output:\n%s\nwant:\n%s", r.stdout, want)
		}
	})

	// The candidate allows 5 replicas, not 20; greets differently; and
	// keeps no config next to a retained ConfigMap.
	candidate := t.TempDir()
	if err := os.CopyFS(candidate, os.DirFS(widgetTemplates)); err != nil {
		t.Fatal(err)
	}
	edit(t, filepath.Join(candidate, "widget/api/api.cue"), "replicas: int & >=0 & <=20 | *1", "replicas: int & >=0 & <=5 | *1")
	edit(t, filepath.Join(candidate, "widget/widget.cue"), `| "hello"`, `| "hi"`)
	edit(t, filepath.Join(candidate, "widget/widget.cue"), "if cr.spec.withConfig {", "if cr.spec.withConfig && !cr.spec.retained {")

	r := runCuerator(t, bin, nil, "check", "--templates", candidate, "--against", current, "--preflight", "-n", ns)
	r.expect(t, 1)
	for _, want := range []string{
		"breaking: Widget spec.replicas: the maximum is lowered from <=20 to <=5\n",
		"Widget/" + ns + "/big: would fail: spec.replicas: ",
		"Widget/" + ns + "/configured: ConfigMap/" + ns + "/configured-config would change\n",
		"\n-  greeting: hello\n",
		"\n+  greeting: hi\n",
		"Widget/" + ns + "/pruned: ConfigMap/" + ns + "/pruned-config would be pruned\n",
		"preflight: 4 CRs: 1 would fail, 1 would change children, 1 would prune children, 1 unchanged\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Widget/"+ns+"/same") {
		t.Errorf("the unchanged Widget is listed:\n%s", r.stdout)
	}
	if !exists(t, ns, "configmap", "pruned-config") || jsonpath(t, ns, "configmap/configured-config", "{.data.greeting}") != "hello" {
		t.Error("the preflight changed the cluster")
	}
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), old, new, 1)
	if edited == string(b) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
}
