package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cueratorRun is one run of the cuerator binary.
type cueratorRun struct {
	stdout, stderr string
	code           int
}

// runCuerator runs the built binary against the test cluster (or the
// kubeconfig given in env) and returns what it printed and its exit code.
func runCuerator(t *testing.T, bin string, env []string, args ...string) cueratorRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cuerator %s: %v", strings.Join(args, " "), err)
	}
	return cueratorRun{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

func tempFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitReconciled waits until the operator has applied the CR's current
// generation and recorded its children. Unlike Ready, that does not depend
// on the children's pods, whose readiness the simulated node may lag.
func waitReconciled(t *testing.T, ns, cr string) {
	t.Helper()
	eventually(t, 60*time.Second, cr+" reconciled", func() error {
		got := jsonpath(t, ns, cr, "{.metadata.generation} {.status.observedGeneration} {.status.inventory[*].id}")
		// generation, observedGeneration, then at least one inventory id
		if f := strings.Fields(got); len(f) < 3 || f[0] != f[1] {
			return fmt.Errorf("generation, observedGeneration, inventory: %q", got)
		}
		return nil
	})
}

func (r cueratorRun) expect(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// cuerator diff against a live Memcached: nothing to show for the file the
// cluster holds, the replicas change for a new size, and the cluster is left
// as it was.
func TestDiffMemcached(t *testing.T) {
	bin := buildCuerator(t)
	ns := namespace(t, "diff-memcached")
	kubectl(t, "apply", "-n", ns, "-f", sample)
	waitReconciled(t, ns, "memcached/memcached-sample")

	t.Run("unchanged", func(t *testing.T) {
		r := runCuerator(t, bin, nil, "diff", "-f", sample, "-n", ns)
		r.expect(t, 0)
		if r.stdout != "" {
			t.Errorf("diff of the applied file printed:\n%s", r.stdout)
		}
	})

	seed, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	resized := tempFile(t, "memcached.yaml", strings.Replace(string(seed), "size: 3", "size: 4", 1))

	t.Run("changed spec", func(t *testing.T) {
		r := runCuerator(t, bin, nil, "diff", "-f", resized, "-n", ns)
		r.expect(t, 1)
		for _, want := range []string{
			"Memcached/" + ns + "/memcached-sample: Deployment/" + ns + "/memcached-sample would change\n",
			"\n-  replicas: 3\n",
			"\n+  replicas: 4\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("diff lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "\x1b[") {
			t.Errorf("colour codes in output to a pipe:\n%q", r.stdout)
		}
		if got := jsonpath(t, ns, "deployment/memcached-sample", "{.spec.replicas}"); got != "3" {
			t.Errorf("diff changed the Deployment: replicas %s", got)
		}
	})

	t.Run("color always", func(t *testing.T) {
		r := runCuerator(t, bin, nil, "diff", "-f", resized, "-n", ns, "--color=always")
		r.expect(t, 1)
		if !strings.Contains(r.stdout, "\x1b[32m+  replicas: 4\x1b[0m") {
			t.Errorf("no green addition in:\n%q", r.stdout)
		}
	})

	t.Run("invalid CR", func(t *testing.T) {
		invalid := tempFile(t, "invalid.yaml", strings.Replace(string(seed), "size: 3", "size: 11", 1))
		r := runCuerator(t, bin, nil, "diff", "-f", invalid, "-n", ns)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "document 0 (Memcached memcached-sample)") || !strings.Contains(r.stderr, "spec.size") {
			t.Errorf("the error does not name the document and spec.size:\n%s", r.stderr)
		}
	})

	t.Run("broken kubeconfig", func(t *testing.T) {
		broken := tempFile(t, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters: {this is not a kubeconfig\n")
		r := runCuerator(t, bin, []string{"KUBECONFIG=" + broken}, "diff", "-f", sample, "-n", ns)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "error: kubeconfig: ") {
			t.Errorf("the error does not say the kubeconfig is at fault:\n%s", r.stderr)
		}
	})

	t.Run("unreachable cluster", func(t *testing.T) {
		unreachable := tempFile(t, "kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
		r := runCuerator(t, bin, []string{"KUBECONFIG=" + unreachable}, "diff", "-f", sample, "-n", ns, "--timeout=20s")
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "127.0.0.1:1") {
			t.Errorf("the error does not name the server:\n%s", r.stderr)
		}
	})
}

// With the Widget kind, spec switches add and drop children: diff shows
// what would be created and what pruned, and leaves both as they are.
func TestDiffCreateAndPrune(t *testing.T) {
	startWidgets(t)
	bin := buildCuerator(t)
	templates, err := filepath.Abs(widgetTemplates)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "diff-widget")
	applyWidget(t, ns, "w", "  withConfig: true\n")
	waitReconciled(t, ns, "widget/w")

	file := tempFile(t, "widget.yaml", "apiVersion: test.cuerator.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  withConfig: false\n  retained: true\n")
	r := runCuerator(t, bin, nil, "diff", "--templates", templates, "-f", file, "-n", ns)
	r.expect(t, 1)
	want := "Widget/" + ns + "/w: ConfigMap/" + ns + "/w-kept would be created\n" +
		"Widget/" + ns + "/w: ConfigMap/" + ns + "/w-config would be pruned\n"
	if r.stdout != want {
		t.Errorf("diff:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !exists(t, ns, "configmap", "w-config") || exists(t, ns, "configmap", "w-kept") {
		t.Error("diff changed the cluster")
	}

	t.Run("refused adoption", func(t *testing.T) {
		kubectl(t, "create", "configmap", "w-kept", "-n", ns, "--from-literal=owner=someone-else")
		r := runCuerator(t, bin, nil, "diff", "--templates", templates, "-f", file, "-n", ns)
		r.expect(t, 1)
		if !strings.Contains(r.stdout, "ConfigMap/"+ns+"/w-kept exists and is owned by field managers kubectl-create") {
			t.Errorf("diff does not say w-kept belongs to someone else:\n%s", r.stdout)
		}
	})
}
