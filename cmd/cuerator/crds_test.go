package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
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

// cuerator crds names, on standard error, each constraint the CRD does not
// enforce as CUE does, and still writes the CRDs.
func TestCRDsWarns(t *testing.T) {
	templates := "../../crdgen/testdata/crd/widgets"
	cmd := crdsCmd(&templates)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kind: CustomResourceDefinition") {
		t.Errorf("no CRD on standard output:\n%s", out.String())
	}
	for _, want := range []string{
		"warning: Widget: spec.address: net.IPv4() is not checked at admission",
		"warning: Widget: spec.prefix: the CRD limits it to 4096 characters",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("standard error lacks %q:\n%s", want, errOut.String())
		}
	}
}

// The built-in module mounted as the kubelet mounts a ConfigMap gives the
// built-in CRDs.
func TestCRDsFromMountedTemplates(t *testing.T) {
	files, err := mount.Files(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	builtin := runCLI(t, "crds")
	if builtin.err != nil || builtin.stdout == "" {
		t.Fatalf("cuerator crds: %v", builtin.err)
	}
	mounted := runCLI(t, "crds", "--templates", dir)
	if mounted.err != nil {
		t.Fatalf("cuerator crds --templates on a mounted ConfigMap: %v", mounted.err)
	}
	if mounted.stdout != builtin.stdout {
		t.Error("cuerator crds --templates on the mounted built-in module differs from the built-in CRDs")
	}
}
