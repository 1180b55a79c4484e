package render_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

var memcachedGVK = schema.GroupVersionKind{Group: "cache.example.com", Version: "v1alpha1", Kind: "Memcached"}

// loadLibrary loads the shipped kinds as the operator does: renders run in
// worker processes.
func loadLibrary(t testing.TB, opts ...render.Option) *render.Library {
	t.Helper()
	lib, err := render.Load(schemas.FS, opts...)
	if err != nil {
		t.Fatalf("load embedded templates: %v", err)
	}
	t.Cleanup(lib.Close)
	return lib
}

func readCR(t testing.TB, path string) *unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil || len(objs) != 1 {
		t.Fatalf("read %s: %d objects, %v", path, len(objs), err)
	}
	return objs[0]
}

func TestRenderMemcachedSample(t *testing.T) {
	kind := loadLibrary(t).Kind(memcachedGVK)
	if kind == nil {
		t.Fatal("Memcached kind not loaded")
	}
	cr := readCR(t, "../examples/memcached-sample.yaml")
	cr.SetNamespace("team-a")
	cr.SetUID("5f1c3a8e-0000-4000-8000-000000000001")

	out, err := kind.Render(cr)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if len(out.Objects) != 1 {
		t.Fatalf("want 1 child, got %d", len(out.Objects))
	}
	d := out.Objects[0]
	if d.GetKind() != "Deployment" || d.GetName() != "memcached-sample" || d.GetNamespace() != "team-a" {
		t.Fatalf("unexpected child %s %s/%s", d.GetKind(), d.GetNamespace(), d.GetName())
	}
	replicas, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	if replicas != 3 {
		t.Errorf("replicas = %d, want 3", replicas)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	if c["name"] != "memcached" || c["image"] != "memcached:1.6" {
		t.Errorf("container = %v", c)
	}
	port := c["ports"].([]any)[0].(map[string]any)
	if port["containerPort"] != int64(11211) || port["name"] != "memcached" {
		t.Errorf("port = %v", port)
	}
	labels := d.GetLabels()
	if labels["app"] != "memcached" || labels["memcached_cr"] != "memcached-sample" {
		t.Errorf("labels = %v", labels)
	}
	refs := d.GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != "Memcached" || refs[0].UID != cr.GetUID() || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("ownerReferences = %v", refs)
	}
	if out.PodSelector["memcached_cr"] != "memcached-sample" {
		t.Errorf("pod selector = %v", out.PodSelector)
	}

	status, err := out.Status(render.Observed{
		Pods:     []render.ObservedPod{{Name: "b"}, {Name: "a"}},
		Children: map[string]any{"deployment": map[string]any{"status": map[string]any{"replicas": int64(2)}}},
	})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if nodes, ok := status["nodes"].([]any); !ok || len(nodes) != 2 || nodes[0] != "b" {
		t.Errorf("status.nodes = %v", status["nodes"])
	}
	// What the scale subresource reports: the Deployment's replicas, and a
	// selector of the pods.
	if status["replicas"] != float64(2) {
		t.Errorf("status.replicas = %v, want 2", status["replicas"])
	}
	wantSelectorString(t, status["selector"], labels)
}

func TestRenderAppliesCUEDefaults(t *testing.T) {
	kind := loadLibrary(t).Kind(memcachedGVK)
	cr := readCR(t, "../examples/memcached-sample.yaml")
	unstructured.RemoveNestedField(cr.Object, "spec", "image")
	out, err := kind.Render(cr)
	if err != nil {
		t.Fatal(err)
	}
	image, _, _ := unstructured.NestedSlice(out.Objects[0].Object, "spec", "template", "spec", "containers")
	if got := image[0].(map[string]any)["image"]; got != "memcached:1.6" {
		t.Errorf("default image = %v", got)
	}
}

func TestRenderRejectsBadSpecNamingTheField(t *testing.T) {
	kind := loadLibrary(t).Kind(memcachedGVK)
	for name, mutate := range map[string]func(*unstructured.Unstructured){
		"zero": func(cr *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(cr.Object, int64(0), "spec", "size")
		},
		"eleven": func(cr *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(cr.Object, int64(11), "spec", "size")
		},
		"string": func(cr *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(cr.Object, "three", "spec", "size")
		},
		"missing": func(cr *unstructured.Unstructured) { unstructured.RemoveNestedField(cr.Object, "spec", "size") },
		"no spec": func(cr *unstructured.Unstructured) { unstructured.RemoveNestedField(cr.Object, "spec") },
		"float":   func(cr *unstructured.Unstructured) { _ = unstructured.SetNestedField(cr.Object, 2.5, "spec", "size") },
	} {
		t.Run(name, func(t *testing.T) {
			cr := readCR(t, "../examples/memcached-sample.yaml")
			mutate(cr)
			_, err := kind.Render(cr)
			var verr *render.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if !strings.Contains(err.Error(), "spec.size") {
				t.Errorf("error does not name spec.size: %v", err)
			}
			if strings.Contains(err.Error(), "empty disjunction") {
				t.Errorf("error carries disjunction noise: %v", err)
			}
		})
	}
}

func TestRenderRejectsUnknownField(t *testing.T) {
	kind := loadLibrary(t).Kind(memcachedGVK)
	cr := readCR(t, "../examples/memcached-sample.yaml")
	_ = unstructured.SetNestedField(cr.Object, int64(3), "spec", "sizee")
	_, err := kind.Render(cr)
	if err == nil || !strings.Contains(err.Error(), "spec.sizee") {
		t.Fatalf("want an error naming spec.sizee, got %v", err)
	}
}

// One compiled template serves concurrent reconciles.
func TestRenderConcurrently(t *testing.T) {
	kind := loadLibrary(t).Kind(memcachedGVK)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr := readCR(t, "../examples/memcached-sample.yaml")
			_ = unstructured.SetNestedField(cr.Object, int64(1+i%10), "spec", "size")
			out, err := kind.Render(cr)
			if err != nil {
				errs <- err
				return
			}
			if r, _, _ := unstructured.NestedInt64(out.Objects[0].Object, "spec", "replicas"); r != int64(1+i%10) {
				errs <- errors.New("replicas mixed up between goroutines")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A kind whose #Status embeds common.#Status, or is open, keeps the digests
// of its children in its inventory; one with an inventory shape of its own
// cannot, and the operator then writes the inventory without them.
func TestKeepsDigests(t *testing.T) {
	lib := loadLibrary(t)
	for _, k := range lib.Kinds() {
		if !k.KeepsDigests() {
			t.Errorf("%s (embeds common.#Status) keeps no digests", k.GVK.Kind)
		}
	}
	own := moduleWith(t, plainModule, "package x\nchildKinds: []\ncr: _\nobjects: {}\n")
	api := filepath.Join(own, "x", "api", "api.cue")
	if err := os.WriteFile(api, []byte(`package api
#CRD: {group: "sec.test", version: "v1", kind: "X", plural: "xs", singular: "x", scope: "Namespaced"}
#Spec: {}
#Status: {
	observedGeneration?: int
	conditions?: [...]
	children?: [...]
	inventory?: [...{id: string, v: string}]
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	closed, err := render.Load(os.DirFS(own))
	if err != nil {
		t.Fatal(err)
	}
	if closed.Kinds()[0].KeepsDigests() {
		t.Error("a #Status whose inventory entries are {id, v} only is said to keep digests")
	}
}
