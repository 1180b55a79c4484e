package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cuerator finds its cluster as kubectl does: --kubeconfig with KUBECONFIG
// unset, the namespace of the current context for CRs that name none,
// --context to pick another, -n over both.
func TestCLIFollowsTheKubeconfig(t *testing.T) {
	bin := buildCuerator(t)
	inContext := namespace(t, "cli-context-namespace")
	other := namespace(t, "cli-other-context")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	b, err := os.ReadFile(testCluster.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "config", "--kubeconfig", kubeconfig, "set-context", "--current", "--namespace", inContext)
	cluster := kubectl(t, "config", "--kubeconfig", kubeconfig, "view", "--minify", "-o", "jsonpath={.contexts[0].context.cluster}")
	user := kubectl(t, "config", "--kubeconfig", kubeconfig, "view", "--minify", "-o", "jsonpath={.contexts[0].context.user}")
	kubectl(t, "config", "--kubeconfig", kubeconfig, "set-context", "other", "--cluster", cluster, "--user", user, "--namespace", other)

	kubectl(t, "apply", "-n", inContext, "-f", sample)
	waitReconciled(t, inContext, "memcached/memcached-sample")

	t.Run("diff with --kubeconfig and no KUBECONFIG", func(t *testing.T) {
		r := runWithoutKubeconfigEnv(t, bin, "diff", "--kubeconfig", kubeconfig, "-f", sample)
		r.expect(t, 0)
		if r.stdout != "" {
			t.Errorf("the CR the context's namespace holds shows a diff:\n%s", r.stdout)
		}
	})
	t.Run("diff with --context", func(t *testing.T) {
		r := runWithoutKubeconfigEnv(t, bin, "diff", "--kubeconfig", kubeconfig, "--context", "other", "-f", sample)
		r.expect(t, 1)
		if want := "Memcached/" + other + "/memcached-sample: Deployment/" + other + "/memcached-sample would be created"; !strings.Contains(r.stdout, want) {
			t.Errorf("diff in the other context's namespace lacks %q:\n%s", want, r.stdout)
		}
	})
	t.Run("render with the context's namespace, -n over it", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, inContext},
			{[]string{"-n", "explicit"}, "explicit"},
		} {
			args := append([]string{"render", "--kubeconfig", kubeconfig, "-f", sample, "-o", "json"}, c.args...)
			r := runWithoutKubeconfigEnv(t, bin, args...)
			r.expect(t, 0)
			var child struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &child); err != nil {
				t.Fatalf("render -o json: %v\n%s", err, r.stdout)
			}
			if child.Kind != "Deployment" || child.Metadata.Namespace != c.want {
				t.Errorf("render %v: %s in namespace %q, want a Deployment in %q", c.args, child.Kind, child.Metadata.Namespace, c.want)
			}
		}
	})
	t.Run("no kubeconfig at all", func(t *testing.T) {
		r := runWithoutKubeconfigEnv(t, bin, "diff", "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "-f", sample)
		r.expect(t, 2)
		if !strings.Contains(r.stderr, "kubeconfig") {
			t.Errorf("the error does not name the kubeconfig: %s", r.stderr)
		}
	})
}

// runWithoutKubeconfigEnv runs the binary with KUBECONFIG unset and no
// ~/.kube/config, so that only the flags can lead it to a cluster.
func runWithoutKubeconfigEnv(t *testing.T, bin string, args ...string) cueratorRun {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return runBinary(t, bin, append(env, "HOME="+t.TempDir()), args...)
}

// Installed as kubectl-cuerator on PATH, the binary is `kubectl cuerator`:
// kubectl lists it, runs it, and completes its commands and flags through
// hack/kubectl_complete-cuerator.
func TestKubectlPlugin(t *testing.T) {
	path := t.TempDir()
	const stamped = "v0.0.0-plugin"
	goBuild(t, "go", "build", "-ldflags", "-X main.version="+stamped, "-o", filepath.Join(path, "kubectl-cuerator"), "./cmd/cuerator")
	helper, err := os.ReadFile("../../hack/kubectl_complete-cuerator")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "kubectl_complete-cuerator"), helper, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+testCluster.KubeconfigPath)
	kubectlWith := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("kubectl", args...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if list := kubectlWith("plugin", "list", "--name-only"); !slices.Contains(strings.Fields(list), "kubectl-cuerator") {
		t.Errorf("kubectl plugin list does not list kubectl-cuerator:\n%s", list)
	}
	if v := kubectlWith("cuerator", "version"); !strings.Contains(v, stamped) {
		t.Errorf("kubectl cuerator version: %q, want the stamped %s", v, stamped)
	}
	if help := kubectlWith("cuerator", "diff", "--help"); !strings.Contains(help, "kubectl cuerator diff") {
		t.Errorf("the plugin's help does not say kubectl cuerator:\n%s", help)
	}
	if c := kubectlWith("__complete", "cuerator", "di"); !strings.HasPrefix(c, "diff\t") {
		t.Errorf("kubectl completes `kubectl cuerator di` as %q, want diff", c)
	}
	if c := kubectlWith("__complete", "cuerator", "render", "-o", ""); !strings.HasPrefix(c, "yaml\njson\n") {
		t.Errorf("kubectl completes `kubectl cuerator render -o` as %q, want yaml and json", c)
	}
}
