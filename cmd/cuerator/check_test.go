package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCheck runs cuerator check with args and returns its output and error.
func runCheck(t *testing.T, templates string, args ...string) (string, error) {
	t.Helper()
	cmd := checkCmd(&templates)
	// As the root command does, for every command.
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// editedSchemas is a copy of the built-in template module with one edit.
func editedSchemas(t *testing.T, file, old, new string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../schemas")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), old, new, 1)
	if edited == string(b) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckAgainst(t *testing.T) {
	const shipped = "../../schemas"
	t.Run("nothing breaks", func(t *testing.T) {
		out, err := runCheck(t, shipped, "--against", shipped)
		if err != nil || out != "no breaking change from "+shipped+"\n" {
			t.Errorf("check of the templates against themselves: %v\n%s", err, out)
		}
	})
	t.Run("a tightened bound and a removed field", func(t *testing.T) {
		candidate := editedSchemas(t, "webapp/api/api.cue", "replicas: int & >=1 & <=100 | *1", "replicas: int & >=1 & <=10 | *1")
		out, err := runCheck(t, candidate, "--against", shipped)
		var code exitCode
		if !errors.As(err, &code) || code != 1 {
			t.Errorf("exit %v, want 1", err)
		}
		want := "breaking: WebApp spec.replicas: the maximum is lowered from <=100 to <=10\n1 breaking change from " + shipped + "\n"
		if out != want {
			t.Errorf("output:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("a loosened bound", func(t *testing.T) {
		candidate := editedSchemas(t, "memcached/api/api.cue", "size: int & >=1 & <=10", "size: int & >=1 & <=20")
		if out, err := runCheck(t, candidate, "--against", shipped); err != nil {
			t.Errorf("exit %v:\n%s", err, out)
		}
	})
	t.Run("no mode", func(t *testing.T) {
		if _, err := runCheck(t, shipped); err == nil || !strings.Contains(err.Error(), "--against DIR") {
			t.Errorf("error %v, want one naming --against and --preflight", err)
		}
	})
	t.Run("a directory that is no template module", func(t *testing.T) {
		_, err := runCheck(t, shipped, "--against", t.TempDir())
		var code exitCode
		if err == nil || errors.As(err, &code) || !strings.Contains(err.Error(), "--against") {
			t.Errorf("error %v, want one naming --against (exit 2)", err)
		}
	})
}
