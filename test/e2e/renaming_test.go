package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
)

// renaming puts the built-in kinds into groups of their own
// (cache.example.com becomes cache.<suffix>), so that an operator a test
// runs with a deployed identity serves CRs that the operator of TestMain,
// which reconciles the built-in kinds in every namespace, never touches.
// Each test has its own suffix: controller-runtime allows a controller
// name (the kind and group) once per process.
type renaming struct{ suffix string }

func (r renaming) group(group string) string {
	return strings.TrimSuffix(group, "example.com") + r.suffix
}

// library copies the built-in template module with every kind's group
// renamed, and loads it.
func (r renaming) library(t *testing.T) *render.Library {
	t.Helper()
	files, err := mount.Files(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for path, content := range r.files(t, files) {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(path)), string(content))
	}
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// files returns the files of a copy of the built-in template module (by
// path) with every kind's group renamed.
func (r renaming) files(t *testing.T, files map[string][]byte) map[string][]byte {
	t.Helper()
	groupLine := regexp.MustCompile(`(\bgroup:\s*")([a-z0-9.-]+)\.example\.com"`)
	out := map[string][]byte{}
	renamed, apis := 0, 0
	for path, b := range files {
		if strings.HasSuffix(path, ".cue") {
			renamed += len(groupLine.FindAll(b, -1))
			b = groupLine.ReplaceAll(b, []byte(`${1}${2}.`+r.suffix+`"`))
		}
		if strings.HasSuffix(path, "/api/api.cue") {
			apis++
		}
		out[path] = b
	}
	if renamed != apis {
		t.Fatalf("renamed %d groups for %d kinds: a #CRD group no longer reads group: \"<x>.example.com\"", renamed, apis)
	}
	return out
}

// grant binds the operator's ServiceAccount to generated, a ClusterRole
// generated for the renamed kinds, under the name as, after checking that
// it is the shipped ClusterRole of its name with the groups (and the CRD
// names) renamed and nothing more.
func (r renaming) grant(t *testing.T, shipped []*unstructured.Unstructured, generated *rbacv1.ClusterRole, as string) {
	t.Helper()
	var role *rbacv1.ClusterRole
	for _, o := range shipped {
		if o.GetKind() == "ClusterRole" && o.GetName() == generated.Name {
			role = &rbacv1.ClusterRole{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if role == nil {
		t.Fatalf("no ClusterRole %s is shipped", generated.Name)
	}
	want := permissionsOf(role.Rules, func(name string) string {
		if strings.HasSuffix(name, ".example.com") {
			return r.group(name)
		}
		return name
	})
	if got := permissionsOf(generated.Rules, nil); !got.Equal(want) {
		t.Fatalf("the renamed kinds' ClusterRole %s is not the shipped one renamed:\n extra   %v\n missing %v", generated.Name, sortedPermissions(got.Difference(want)), sortedPermissions(want.Difference(got)))
	}
	generated = generated.DeepCopy()
	generated.Name = as
	applyObjects(t, generated, clusterRoleBinding(as, as, operatorNamespace, "cuerator"))
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "--ignore-not-found", "clusterrolebinding/"+as, "clusterrole/"+as)
	})
}

// samples applies the samples of examples/, in the renamed groups, to ns,
// and returns them by kind as kubectl names them (resource.group/name).
func (r renaming) samples(t *testing.T, lib *render.Library, ns string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, file := range files {
		maps.Copy(names, r.sample(t, lib, ns, file))
	}
	if len(names) != len(lib.Kinds()) {
		t.Fatalf("examples/ has %d samples for %d kinds", len(names), len(lib.Kinds()))
	}
	return names
}

// sample applies the CRs of one sample file in the renamed groups, as
// samples does.
func (r renaming) sample(t *testing.T, lib *render.Library, ns, file string) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, cr := range manifestsIn(t, file) {
		gvk := cr.GroupVersionKind()
		gvk.Group = r.group(gvk.Group)
		kind := lib.Kind(gvk)
		if kind == nil {
			t.Fatalf("%s: no kind %s", file, gvk)
		}
		cr.SetGroupVersionKind(gvk)
		cr.SetNamespace(ns)
		b, err := json.Marshal(cr.Object)
		if err != nil {
			t.Fatal(err)
		}
		kubectlIn(t, string(b), "apply", "-f", "-")
		names[gvk.Kind] = kind.Plural + "." + gvk.Group + "/" + cr.GetName()
	}
	return names
}

// manifestsIn reads the objects of a YAML manifest file.
func manifestsIn(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return objs
}
