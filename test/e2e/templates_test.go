package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/render"
)

// A template module in a directory, as `cuerator run --templates DIR` uses
// it, changed while the operator runs.

const liveModule = `module: "test.cuerator.dev/live@v0"
language: version: "v0.17.0"
`

// liveKind returns the api and template packages of a kind whose only child
// is a ConfigMap carrying greeting.
func liveKind(kind, greeting string) (api, template string) {
	lower := strings.ToLower(kind)
	api = fmt.Sprintf(`package api

#CRD: {group: "live.test.cuerator.dev", version: "v1", kind: %q, plural: "%ss", singular: %q, scope: "Namespaced"}
#Spec: {
	// size is a number.
	size: int | *1
}
#Status: {...}
`, kind, lower, lower)
	template = fmt.Sprintf(`package %s

import "test.cuerator.dev/live/%s/api"

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: config: {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: cr.metadata.name
	data: greeting: %q
}
`, lower, lower, greeting)
	return api, template
}

func writeLiveKind(t *testing.T, dir, kind, greeting string) {
	t.Helper()
	api, tmpl := liveKind(kind, greeting)
	lower := strings.ToLower(kind)
	writeFile(t, filepath.Join(dir, lower, "api", "api.cue"), api)
	writeFile(t, filepath.Join(dir, lower, lower+".cue"), tmpl)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLiveTemplates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cue.mod", "module.cue"), liveModule)
	writeLiveKind(t, dir, "Gizmo", "hello")

	startOperatorFor(t, dir)

	ns := namespace(t, "live-templates")
	// The operator installed the CRD of the kind it started with.
	kubectlIn(t, "apiVersion: live.test.cuerator.dev/v1\nkind: Gizmo\nmetadata: {name: g1}\nspec: {size: 2}\n", "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "gizmo/g1")
	if g := jsonpath(t, ns, "configmap/g1", "{.data.greeting}"); g != "hello" {
		t.Fatalf("greeting %q", g)
	}

	t.Run("a new kind is served without a restart", func(t *testing.T) {
		writeLiveKind(t, dir, "Gadget", "new")
		eventually(t, 60*time.Second, "Gadget CRD established", func() error {
			_, err := kubectlOut(testCluster.KubeconfigPath, "wait", "--for=condition=Established", "crd/gadgets.live.test.cuerator.dev", "--timeout=1s")
			return err
		})
		kubectlIn(t, "apiVersion: live.test.cuerator.dev/v1\nkind: Gadget\nmetadata: {name: d1}\nspec: {}\n", "apply", "-n", ns, "-f", "-")
		waitReady(t, ns, "gadget/d1")
		if g := jsonpath(t, ns, "configmap/d1", "{.data.greeting}"); g != "new" {
			t.Errorf("Gadget child greeting %q", g)
		}
	})

	t.Run("a changed kind re-renders its CRs", func(t *testing.T) {
		writeLiveKind(t, dir, "Gizmo", "changed")
		eventually(t, 60*time.Second, "ConfigMap re-rendered", func() error {
			if g := jsonpath(t, ns, "configmap/g1", "{.data.greeting}"); g != "changed" {
				return fmt.Errorf("greeting %q", g)
			}
			return nil
		})
	})

	t.Run("a broken template keeps the last good one and says so", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "gizmo", "gizmo.cue"), "package gizmo\n\nobjects: {\n")
		eventually(t, 60*time.Second, "TemplatesLoaded=False on the CR", func() error {
			if c := condition(t, ns, "gizmo/g1", "TemplatesLoaded"); !strings.HasPrefix(c, "False/"+controllers.ReasonTemplateLoadFailed) {
				return fmt.Errorf("TemplatesLoaded %q", c)
			}
			return nil
		})
		events := kubectl(t, "get", "events", "-n", ns, "--field-selector=reason=TemplateLoadFailed", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(events, "gizmo") {
			t.Errorf("no TemplateLoadFailed event names the broken file: %q", events)
		}
		if g := jsonpath(t, ns, "configmap/g1", "{.data.greeting}"); g != "changed" {
			t.Errorf("a broken template changed the child: greeting %q", g)
		}
		// A spec change still renders with the last good template.
		kubectl(t, "patch", "gizmo", "g1", "-n", ns, "--type=merge", "-p", `{"spec":{"size":3}}`)
		waitReady(t, ns, "gizmo/g1")
		if !exists(t, ns, "configmap", "g1") {
			t.Error("the child was removed while the template was broken")
		}
	})
}

// startOperatorFor runs an operator for the template module in dir, as
// `cuerator run --templates DIR` does, until the test ends.
func startOperatorFor(t *testing.T, dir string) {
	t.Helper()
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, testCluster.Config, lib, dir)
}

// startManager runs an operator for lib with the identity of cfg until the
// test ends; templatesDir, unless empty, is followed as --templates does.
func startManager(t *testing.T, cfg *rest.Config, lib *render.Library, templatesDir string) {
	t.Helper()
	opts := controllers.ManagerOptions{Options: quickReconciles}
	opts.TemplatesDir = templatesDir
	op, err := startInProcess(cfg, lib, opts)
	if err != nil {
		t.Fatalf("start the operator: %v", err)
	}
	t.Cleanup(func() { _ = op.stop() })
}

// A namespaced CR cannot make the operator write outside its namespace or
// create cluster-scoped objects, whatever its template or spec says.
func TestNamespacedCRStaysInItsNamespace(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cue.mod", "module.cue"), "module: \"test.cuerator.dev/escape@v0\"\nlanguage: version: \"v0.17.0\"\n")
	writeFile(t, filepath.Join(dir, "escape", "api", "api.cue"), `package api

#CRD: {group: "escape.test.cuerator.dev", version: "v1", kind: "Escape", plural: "escapes", singular: "escape", scope: "Namespaced"}
#Spec: {
	// target is where the template tries to write: namespace, cluster or other-namespace.
	target: "namespace" | "cluster" | "other-namespace"
}
#Status: {...}
`)
	writeFile(t, filepath.Join(dir, "escape", "escape.cue"), `package escape

import "test.cuerator.dev/escape/escape/api"

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}, {apiVersion: "v1", kind: "Namespace"}, {apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: {
	local: {apiVersion: "v1", kind: "ConfigMap", metadata: name: cr.metadata.name + "-local"}
	if cr.spec.target == "cluster" {
		ns: {apiVersion: "v1", kind: "Namespace", metadata: name: "escaped-" + cr.metadata.name}
		crb: {
			apiVersion: "rbac.authorization.k8s.io/v1"
			kind:       "ClusterRoleBinding"
			metadata: name: "escaped-" + cr.metadata.name
			roleRef: {apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin"}
			subjects: [{kind: "ServiceAccount", name: "default", namespace: cr.metadata.namespace}]
		}
	}
	if cr.spec.target == "other-namespace" {
		remote: {apiVersion: "v1", kind: "ConfigMap", metadata: {name: cr.metadata.name + "-remote", namespace: "default"}}
	}
}
`)
	startOperatorFor(t, dir)
	ns := namespace(t, "escape")

	kubectlIn(t, "apiVersion: escape.test.cuerator.dev/v1\nkind: Escape\nmetadata: {name: e1}\nspec: {target: cluster}\n", "apply", "-n", ns, "-f", "-")
	eventually(t, 30*time.Second, "cluster-scoped children refused", func() error {
		if c := condition(t, ns, "escape/e1", "Ready"); !strings.HasPrefix(c, "False/ApplyFailed") || !strings.Contains(c, "cluster-scoped") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	if out, _ := kubectlOut(testCluster.KubeconfigPath, "get", "namespace,clusterrolebinding", "escaped-e1", "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("a namespaced CR created cluster-scoped objects: %s", out)
	}
	if !exists(t, ns, "configmap", "e1-local") {
		t.Error("the CR's own namespaced child was not applied")
	}

	kubectlIn(t, "apiVersion: escape.test.cuerator.dev/v1\nkind: Escape\nmetadata: {name: e2}\nspec: {target: other-namespace}\n", "apply", "-n", ns, "-f", "-")
	eventually(t, 30*time.Second, "a child in another namespace refused", func() error {
		if c := condition(t, ns, "escape/e2", "Stalled"); !strings.HasPrefix(c, "True/TemplateError") || !strings.Contains(c, "namespace") {
			return fmt.Errorf("Stalled %q", c)
		}
		return nil
	})
	if exists(t, "default", "configmap", "e2-remote") {
		t.Error("a namespaced CR wrote into another namespace")
	}
}
