package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// charts/cuerator is what users install with helm; it must be what the
// templates and deploy/ give now.
func TestCommittedChartIsCurrent(t *testing.T) {
	lib, err := loadLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	if err := writeChart(lib, chartOptions{deployDir: "../../deploy", outputDir: fresh, version: "0.1.0"}); err != nil {
		t.Fatal(err)
	}
	const committed = "../../charts/cuerator"
	want, got := chartFiles(t, fresh), chartFiles(t, committed)
	for name, content := range want {
		if got[name] != content {
			t.Errorf("charts/cuerator/%s is stale: run make generate", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/cuerator/%s is no longer generated: run make generate", name)
		}
	}
}

func chartFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
