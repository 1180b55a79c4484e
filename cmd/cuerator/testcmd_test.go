package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func wantExit(t *testing.T, r cliRun, code int) {
	t.Helper()
	var got exitCode
	switch {
	case code == 0 && r.err != nil:
		t.Fatalf("exit %v, want 0:\n%s%s", r.err, r.stdout, r.stderr)
	case code != 0 && (!errors.As(r.err, &got) || int(got) != code):
		t.Fatalf("exit %v, want %d:\n%s%s", r.err, code, r.stdout, r.stderr)
	}
}

// The shipped kinds' tests (schemas/tests) pass: what make test runs.
func TestShippedTemplateTests(t *testing.T) {
	r := runCLI(t, "test", "--templates", "../../schemas", "-v")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "ok    webapp/sample\n") || !strings.Contains(r.stdout, " passed, 0 failed\n") {
		t.Errorf("output:\n%s", r.stdout)
	}
	// What no built-in schema checks is said.
	if !strings.Contains(r.stdout, "not checked offline (no built-in schema): serviceMonitor (monitoring.coreos.com/v1 ServiceMonitor)") {
		t.Errorf("the unchecked ServiceMonitor is not named:\n%s", r.stdout)
	}
	t.Log("\n" + r.stdout)
}

// copyTest copies a shipped test into a tests directory of its own, and
// returns that directory.
func copyTest(t *testing.T, name string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tests")
	if err := os.CopyFS(filepath.Join(root, name), os.DirFS(filepath.Join("../../schemas/tests", name))); err != nil {
		t.Fatal(err)
	}
	return root
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

// A test whose expected files differ from the render fails, exit 1, with a
// unified diff per file; --update rewrites them and the test passes.
func TestTemplateTestFailsWithADiffAndUpdates(t *testing.T) {
	root := copyTest(t, "webapp/sample")
	dir := filepath.Join(root, "webapp", "sample")
	edit(t, filepath.Join(dir, "children", "deployment.yaml"), "  replicas: 3\n", "  replicas: 4\n")
	if err := os.Remove(filepath.Join(dir, "status.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "children", "stale.yaml"), []byte("kind: ConfigMap\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "test", root)
	wantExit(t, r, 1)
	for _, want := range []string{
		"FAIL  webapp/sample\n",
		"      children/deployment.yaml differs:\n",
		"      --- children/deployment.yaml (expected)\n      +++ children/deployment.yaml (rendered)\n",
		"      -  replicas: 4\n      +  replicas: 3\n",
		"      children/stale.yaml: the render has no child stale\n",
		"      status.yaml is missing: the template projects a status (--update writes it)\n",
		"1 tests: 0 passed, 1 failed\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output does not say %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(t, "test", root, "--update")
	wantExit(t, r, 0)
	if want := "wrote webapp/sample: children/stale.yaml (removed), children/deployment.yaml, status.yaml\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("--update output, want %q:\n%s", want, r.stdout)
	}
	wantExit(t, runCLI(t, "test", root), 0)
}

// A misspelt field of a child fails the test, and vet and render, naming
// the field and the file:line that sets it: before this, it passed offline
// and failed only at apply.
func TestMisspeltChildFieldFailsTestVetAndRender(t *testing.T) {
	templates := editedSchemas(t, "webapp/deployment.yaml", "          readinessProbe:\n", "          readinessProbee:\n")
	want := "objects.deployment.spec.template.spec.containers[0].readinessProbee: unknown field: the schema of Deployment apps/v1 has no such field (webapp/deployment.yaml:23)"

	root := copyTest(t, "webapp/sample")
	r := runCLI(t, "test", "--templates", templates, root)
	wantExit(t, r, 1)
	if !strings.Contains(r.stdout, want) {
		t.Errorf("cuerator test does not say %q:\n%s", want, r.stdout)
	}

	r = runCLI(t, "vet", "--templates", templates, "-f", "../../examples/webapp-sample.yaml")
	wantExit(t, r, 1)
	if !strings.Contains(r.stdout, "../../examples/webapp-sample.yaml: document 0 (WebApp my-webapp): "+want) {
		t.Errorf("cuerator vet does not say %q:\n%s", want, r.stdout)
	}

	r = runCLI(t, "render", "--templates", templates, "-f", "../../examples/webapp-sample.yaml")
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Errorf("cuerator render does not fail saying %q: %v", want, r.err)
	}
}

// An expected error: a test passes when the render fails just so.
func TestTemplateTestExpectsAnError(t *testing.T) {
	root := copyTest(t, "webapp/invalid-replicas")
	wantExit(t, runCLI(t, "test", root), 0)
	edit(t, filepath.Join(root, "webapp", "invalid-replicas", "cr.yaml"), "replicas: 1000", "replicas: 10")
	r := runCLI(t, "test", root)
	wantExit(t, r, 1)
	if !strings.Contains(r.stdout, "the render succeeded; error.txt expects it to fail with: spec.replicas: invalid value 1000") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

// A test that cannot run (a cr.yaml with two documents) is an error, exit
// 2; so is a directory without tests.
func TestTemplateTestErrors(t *testing.T) {
	root := copyTest(t, "webapp/sample")
	cr := filepath.Join(root, "webapp", "sample", "cr.yaml")
	b, err := os.ReadFile(cr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cr, append(append(b, "---\n"...), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "test", root)
	wantExit(t, r, 2)
	if !strings.Contains(r.stdout, "ERROR webapp/sample: ") || !strings.Contains(r.stdout, "2 documents, want one CR") {
		t.Errorf("output:\n%s", r.stdout)
	}
	r = runCLI(t, "test", t.TempDir())
	if r.err == nil || !strings.Contains(r.err.Error(), "no test found") {
		t.Errorf("no tests: %v", r.err)
	}
}
