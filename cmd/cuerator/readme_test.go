package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// The README's "Writing a kind" example must work as written: its two CUE
// files, added to a copy of the template module, give a kind with a CRD and
// a render.
func TestReadmeWorkedExampleAddsAKind(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../schemas")); err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```cue\n(// (schemas/[^\n]+)\n.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 2 {
		t.Fatalf("README has %d CUE file blocks, want the api and template of the example", len(blocks))
	}
	for _, b := range blocks {
		path := filepath.Join(dir, strings.TrimPrefix(string(b[2]), "schemas/"))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b[1], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("the README's kind does not load: %v", err)
	}
	var redis *render.Kind
	for _, k := range lib.Kinds() {
		if k.GVK.Kind == "Redis" {
			redis = k
		}
	}
	if redis == nil {
		t.Fatal("the README's Redis kind is not in the library")
	}
	if _, err := crdgen.Generate(redis); err != nil {
		t.Fatalf("CRD: %v", err)
	}
	crs, err := render.ReadManifests(bytes.NewReader([]byte("apiVersion: cache.example.com/v1alpha1\nkind: Redis\nmetadata: {name: r1, namespace: default}\nspec: {replicas: 2}\n")))
	if err != nil {
		t.Fatal(err)
	}
	out, err := redis.Render(crs[0])
	if err != nil || len(out.Objects) != 1 || out.Objects[0].GetKind() != "Deployment" {
		t.Fatalf("render: %v, %v", out, err)
	}
}

// The README's excerpts of the versioned Memcached ("A new version") are
// taken from test/versions as it is, which the tests load, convert and
// upgrade live.
func TestReadmeVersionExcerpts(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```cue\n// (test/versions/[^\n]+)\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 2 {
		t.Fatalf("README has %d excerpts of test/versions, want #Versions and #Convert", len(blocks))
	}
	for _, b := range blocks {
		file, err := os.ReadFile(filepath.Join("../..", string(b[1])))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(file, b[2]) {
			t.Errorf("README's excerpt of %s is not in the file:\n%s", b[1], b[2])
		}
	}
}
