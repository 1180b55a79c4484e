package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cuerator/cuerator/crdgen"
)

// deploy/crds is what `make install` and `make deploy` apply; it must be
// what the templates generate now.
func TestCommittedCRDsAreCurrent(t *testing.T) {
	lib, err := loadLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	crds, err := crdgen.GenerateAll(lib)
	if err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	if err := writeCRDFiles(fresh, crds); err != nil {
		t.Fatal(err)
	}
	const committed = "../../deploy/crds"
	want, _ := filepath.Glob(filepath.Join(fresh, "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(committed, "*.yaml"))
	if len(got) != len(want) {
		t.Errorf("deploy/crds has %d CRD files, the templates generate %d: run make generate", len(got), len(want))
	}
	for _, w := range want {
		name := filepath.Base(w)
		wb, _ := os.ReadFile(w)
		gb, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil || string(gb) != string(wb) {
			t.Errorf("deploy/crds/%s is stale: run make generate", name)
		}
	}
}
