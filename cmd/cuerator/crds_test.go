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
	"github.com/cuerator/cuerator/test/versions"
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

// A kind of several versions gets a CRD that converts through the
// operator's webhook: the Service of deploy/conversion by default, or
// another Service or a URL, with a CA when one is given. The Helm chart
// and the OLM bundle (GenerateAll) refuse it, rather than ship a CRD that
// would not convert.
func TestCRDsOfSeveralVersions(t *testing.T) {
	files, err := versions.Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"strategy: Webhook", "name: cuerator-webhook-service\n          namespace: cuerator-system\n          path: /convert\n          port: 443\n", "conversionReviewVersions:\n      - v1\n"}},
		{[]string{"--conversion-webhook-service", "ops/hook:8443"}, []string{"name: hook\n          namespace: ops\n          path: /convert\n          port: 8443\n"}},
		{[]string{"--conversion-webhook-url", "https://10.0.0.1:9443/convert", "--conversion-ca-file", caFile}, []string{"url: https://10.0.0.1:9443/convert", "caBundle: LS0tLS1CRUdJTi"}},
	} {
		r := runCLI(t, append([]string{"crds", "--templates", dir}, c.args...)...)
		if r.err != nil {
			t.Fatalf("crds %v: %v", c.args, r.err)
		}
		// The Memcached CRD alone converts: the other kinds have one version.
		if n := strings.Count(r.stdout, "conversion:"); n != 1 {
			t.Errorf("crds %v: %d CRDs with a conversion, want 1", c.args, n)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("crds %v: output lacks %q", c.args, w)
			}
		}
	}
	if r := runCLI(t, "crds", "--templates", dir, "--conversion-webhook-service", "nowhere"); r.err == nil || !strings.Contains(r.err.Error(), `--conversion-webhook-service: conversion webhook Service "nowhere": want namespace/name[:port]`) {
		t.Errorf("a bad Service: %v", r.err)
	}
	lib, err := loadLibrary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crdgen.GenerateAll(lib); err == nil || !strings.Contains(err.Error(), "kind Memcached has 2 versions") {
		t.Errorf("the CRDs of the chart and the bundle, with a kind of several versions: %v", err)
	}
}
