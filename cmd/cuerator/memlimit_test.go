package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimitFromCgroup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "absent")
	for _, tc := range []struct {
		name  string
		files []string
		want  int64
	}{
		{"cgroup v2 limit", []string{write("v2", "536870912\n")}, 536870912},
		{"cgroup v2 unlimited", []string{write("v2max", "max\n")}, 0},
		{"cgroup v1 after a missing v2", []string{missing, write("v1", "268435456\n")}, 268435456},
		{"cgroup v1 unlimited", []string{write("v1max", "9223372036854771712\n")}, 0},
		{"no cgroup", []string{missing}, 0},
	} {
		got, err := memoryLimitFrom(tc.files)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := memoryLimitFrom([]string{write("bad", "lots")}); err == nil || !strings.Contains(err.Error(), `"lots" is not a number of bytes`) {
		t.Errorf("a garbled limit: %v", err)
	}
}

func TestSetMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	previous := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(previous) })
	file := filepath.Join(t.TempDir(), "memory.max")
	if err := os.WriteFile(file, []byte("536870912\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	soft, err := setMemoryLimit(0.8, []string{file})
	if err != nil || soft != 429496729 || debug.SetMemoryLimit(-1) != soft {
		t.Fatalf("512 MiB at 0.8: set %d (runtime %d), %v", soft, debug.SetMemoryLimit(-1), err)
	}
	if _, err := setMemoryLimit(1.5, []string{file}); err == nil || !strings.Contains(err.Error(), "--memory-limit-ratio 1.5") {
		t.Errorf("ratio 1.5: %v", err)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if soft, err := setMemoryLimit(0.8, []string{file}); soft != 0 || err != nil {
		t.Errorf("with GOMEMLIMIT set: %d, %v; want it left alone", soft, err)
	}
}
