package main

import (
	"os"
	"path/filepath"
	"testing"
)

// deploy/live-templates is what `make deploy OVERLAY=live-templates`
// applies; its generated files must be what the templates give now.
func TestCommittedLiveTemplatesAreCurrent(t *testing.T) {
	fresh := t.TempDir()
	if r := runCLI(t, "configmap", "--output-dir", fresh); r.err != nil {
		t.Fatal(r.err)
	}
	for _, name := range []string{"templates.yaml", "manager_patch.yaml", "crd_installer_role.yaml"} {
		want, err := os.ReadFile(filepath.Join(fresh, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("../../deploy/live-templates", name))
		if err != nil || string(got) != string(want) {
			t.Errorf("deploy/live-templates/%s is stale: run make generate", name)
		}
	}
}
