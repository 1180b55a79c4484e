package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
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
	return runBinary(t, bin, append(append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath), env...), args...)
}

// runBinary runs bin with exactly the environment env.
func runBinary(t *testing.T, bin string, env []string, args ...string) cueratorRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
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

// cuerator diff and the operator take the same prune decisions, read from
// the child contract: for each child the template drops, the test derives
// what should happen from child.PolicyOf and child.NeverDeleted (so a change
// of a default, such as the claims' Retain, moves both), then checks that
// diff predicts it and the operator does it.
func TestDiffPredictsWhatTheOperatorPrunes(t *testing.T) {
	startWidgets(t)
	bin := buildCuerator(t)
	templates, err := filepath.Abs(widgetTemplates)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "diff-predicts")
	applyWidget(t, ns, "w", "  withConfig: true\n  retained: true\n  volume: true\n")
	waitReconciled(t, ns, "widget/w")

	dropped := []struct{ resource, name string }{{"configmap", "w-config"}, {"configmap", "w-kept"}, {"persistentvolumeclaim", "w-data"}}
	type outcome struct {
		line   string // the diff's line, "" when it lists nothing
		policy child.PrunePolicy
		kept   bool
	}
	want := map[string]outcome{}
	uids := map[string]string{}
	for _, d := range dropped {
		live := liveObject(t, ns, d.resource, d.name)
		uids[d.name] = string(live.GetUID())
		gk := live.GroupVersionKind().GroupKind()
		o := outcome{policy: child.PolicyOf(live, gk), kept: true}
		prefix := "Widget/" + ns + "/w: " + child.Describe(live)
		switch {
		case child.NeverDeleted(gk), o.policy == child.PruneRetain:
		case o.policy == child.PruneOrphan:
			o.line = prefix + " would be orphaned (kept, without cuerator's labels)"
		default:
			o.line, o.kept = prefix+" would be pruned", false
		}
		want[d.name] = o
	}

	spec := "apiVersion: test.cuerator.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  withConfig: false\n  retained: false\n  volume: false\n"
	r := runCuerator(t, bin, nil, "diff", "--templates", templates, "-f", tempFile(t, "w.yaml", spec), "-n", ns)
	var wantLines []string
	for _, d := range dropped {
		if l := want[d.name].line; l != "" {
			wantLines = append(wantLines, l)
		}
	}
	gotLines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	slices.Sort(gotLines)
	slices.Sort(wantLines)
	if !slices.Equal(gotLines, wantLines) {
		t.Errorf("diff predicts\n%s\nwant (from the child contract)\n%s", strings.Join(gotLines, "\n"), strings.Join(wantLines, "\n"))
	}

	kubectlIn(t, strings.Replace(spec, "  name: w\n", "  name: w\n  namespace: "+ns+"\n", 1), "apply", "-f", "-")
	waitReconciled(t, ns, "widget/w")
	for _, d := range dropped {
		o := want[d.name]
		eventually(t, 30*time.Second, d.name+" pruned as the contract says", func() error {
			present := exists(t, ns, d.resource, d.name)
			if present != o.kept {
				return fmt.Errorf("%s present=%v, want %v (policy %s)", d.name, present, o.kept, o.policy)
			}
			if !present {
				return nil
			}
			live := liveObject(t, ns, d.resource, d.name)
			if string(live.GetUID()) != uids[d.name] {
				return fmt.Errorf("%s was re-created", d.name)
			}
			if _, labelled := live.GetLabels()[child.LabelOwnerName]; labelled == (o.policy == child.PruneOrphan) {
				return fmt.Errorf("%s labels %v after a prune with policy %s", d.name, live.GetLabels(), o.policy)
			}
			return nil
		})
	}
}

// liveObject reads one object with kubectl.
func liveObject(t *testing.T, ns, resource, name string) *unstructured.Unstructured {
	t.Helper()
	objs, err := render.ReadManifests(strings.NewReader(kubectl(t, "get", resource, name, "-n", ns, "-o", "json")))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s/%s: %v", resource, name, err)
	}
	return objs[0]
}

// A changed Secret shows as changed, with no value of it in the report, as
// kubectl diff masks it.
func TestDiffMasksSecretValues(t *testing.T) {
	bin := buildCuerator(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cue.mod", "module.cue"), "module: \"test.cuerator.dev/secrets@v0\"\nlanguage: version: \"v0.17.0\"\n")
	writeFile(t, filepath.Join(dir, "credential", "api", "api.cue"), `package api

#CRD: {group: "secrets.test.cuerator.dev", version: "v1", kind: "Credential", plural: "credentials", singular: "credential", scope: "Namespaced"}
#Spec: {
	// user is the account's name.
	user: string
	// password is the account's password.
	password: string
}
#Status: {...}
`)
	writeFile(t, filepath.Join(dir, "credential", "credential.cue"), `package credential

import (
	"encoding/base64"
	"test.cuerator.dev/secrets/credential/api"
)

childKinds: [{apiVersion: "v1", kind: "Secret"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: secret: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: cr.metadata.name
	type: "Opaque"
	data: {
		user:     base64.Encode(null, cr.spec.user)
		password: base64.Encode(null, cr.spec.password)
	}
}
`)
	startOperatorFor(t, dir)
	ns := namespace(t, "diff-secret")
	credential := func(password string) string {
		return "apiVersion: secrets.test.cuerator.dev/v1\nkind: Credential\nmetadata: {name: db}\nspec: {user: admin-e2e, password: " + password + "}\n"
	}
	kubectlIn(t, credential("old-e2e-password"), "apply", "-n", ns, "-f", "-")
	waitReconciled(t, ns, "credential/db")

	changed := tempFile(t, "credential.yaml", credential("new-e2e-password"))
	r := runCuerator(t, bin, nil, "diff", "--templates", dir, "-n", ns, "-f", changed)
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1 (a change); stderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"Credential/" + ns + "/db: Secret/" + ns + "/db would change\n",
		"\n-  password: '*** (before)'\n",
		"\n+  password: '*** (after)'\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the diff lacks %q", want)
		}
	}
	for _, value := range []string{"old-e2e-password", "new-e2e-password", "admin-e2e"} {
		for _, shown := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
			if strings.Contains(r.stdout, shown) || strings.Contains(r.stderr, shown) {
				t.Errorf("the diff shows the secret value %s (as %s)", value, shown)
			}
		}
	}
}
