package controllers

import (
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// renderedWebApp renders the example WebApp in process and returns it with
// its kind and what a reconcile would record of it.
func renderedWebApp(t *testing.T) (*render.Kind, *unstructured.Unstructured, *render.Rendered, settled) {
	t.Helper()
	lib, err := render.Load(schemas.FS, render.InProcess())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lib.Close)
	f, err := os.Open("../examples/webapp-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil || len(objs) != 1 {
		t.Fatalf("read the WebApp example: %d objects, %v", len(objs), err)
	}
	cr := objs[0]
	cr.SetNamespace("team-a")
	cr.SetUID("uid-1")
	cr.SetGeneration(1)
	kind := lib.Kind(schema.FromAPIVersionAndKind(cr.GetAPIVersion(), cr.GetKind()))
	if kind == nil {
		t.Fatal("WebApp kind not loaded")
	}
	rendered, err := kind.Render(cr)
	if err != nil {
		t.Fatal(err)
	}
	return kind, cr, rendered, settled{uid: cr.GetUID(), kind: kind, generation: 1, meta: metaDigest(cr)}
}

// The reconciles that follow a converging CR take its kept render while
// the CR and the template are what it was made from, and render again
// after any change a template reads.
func TestKeptRenderServesOnlyTheCRItWasMadeFrom(t *testing.T) {
	_, cr, rendered, seen := renderedWebApp(t)
	key := client.ObjectKeyFromObject(cr)
	otherKind, _, _, _ := renderedWebApp(t) // a reloaded template

	for name, change := range map[string]func(*settled){
		"a new generation":          func(s *settled) { s.generation++ },
		"new labels or annotations": func(s *settled) { s.meta = "other" },
		"a re-created CR":           func(s *settled) { s.uid = "uid-2" },
		"a reloaded template":       func(s *settled) { s.kind = otherKind },
	} {
		var k keptRenders
		k.put(key, &seen, rendered, time.Now())
		if k.get(key, &seen) == nil {
			t.Fatalf("%s: no render kept for the CR it was made from", name)
		}
		now := seen
		change(&now)
		if k.get(key, &now) != nil {
			t.Errorf("after %s, the old render is taken", name)
		}
		if k.get(key, &seen) != nil {
			t.Errorf("after %s, the old render is still kept", name)
		}
	}

	var k keptRenders
	k.put(key, &seen, rendered, time.Now())
	k.drop(key)
	if k.get(key, &seen) != nil {
		t.Error("a dropped render is taken")
	}
}

// A reconcile changes its render (the applied children, what it observed):
// the kept one stays as the template made it.
func TestKeptRenderIsACopy(t *testing.T) {
	_, cr, rendered, seen := renderedWebApp(t)
	key := client.ObjectKeyFromObject(cr)
	want := rendered.Objects[0].DeepCopy()

	var k keptRenders
	k.put(key, &seen, rendered, time.Now())
	rendered.Objects[0].SetLabels(map[string]string{"changed": "after put"})
	first := k.get(key, &seen)
	if got := first.Objects[0]; got.GetLabels()["changed"] != "" {
		t.Fatalf("a change to the render after it was kept reached the kept one: labels %v", got.GetLabels())
	}
	first.Objects[0].SetLabels(map[string]string{"changed": "by a reconcile"})
	if err := unstructured.SetNestedField(first.Objects[0].Object, "x", "spec", "changed"); err != nil {
		t.Fatal(err)
	}
	second := k.get(key, &seen)
	if got := second.Objects[0]; got.GetLabels()["changed"] != "" || fmt.Sprint(got.Object["spec"]) != fmt.Sprint(want.Object["spec"]) {
		t.Errorf("a reconcile's change to its render reached the kept one: %v", got.Object)
	}
	if len(second.Objects) != len(rendered.Objects) || len(second.Keys) != len(rendered.Keys) {
		t.Errorf("the kept render has %d children (%d keys), the render %d", len(second.Objects), len(second.Keys), len(rendered.Objects))
	}
}

// A kept render projects the same status as the render it copies, though
// it holds no filled template.
func TestKeptRenderProjectsTheSameStatus(t *testing.T) {
	_, cr, rendered, seen := renderedWebApp(t)
	key := client.ObjectKeyFromObject(cr)
	var k keptRenders
	k.put(key, &seen, rendered, time.Now())
	want, err := rendered.Status(render.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.get(key, &seen).Status(render.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the kept render projects %v, the render %v", got, want)
	}
}

// At most maxKeptRenders are kept; a full store makes room only from
// renders older than keptRenderAge, so the CRs that came first keep theirs.
func TestKeptRendersAreBounded(t *testing.T) {
	_, _, rendered, seen := renderedWebApp(t)
	start := time.Now()
	var k keptRenders
	for i := range maxKeptRenders {
		k.put(types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}, &seen, rendered, start)
	}
	late := types.NamespacedName{Namespace: "ns", Name: "late"}
	k.put(late, &seen, rendered, start.Add(time.Minute))
	if k.get(late, &seen) != nil {
		t.Errorf("a render was kept beyond %d", maxKeptRenders)
	}
	if k.get(types.NamespacedName{Namespace: "ns", Name: "0"}, &seen) == nil {
		t.Error("a full store let go of a young render")
	}
	k.put(late, &seen, rendered, start.Add(keptRenderAge+time.Minute))
	if k.get(late, &seen) == nil {
		t.Error("renders older than keptRenderAge made no room")
	}
	if n := len(k.renders); n > maxKeptRenders {
		t.Errorf("%d renders kept, want at most %d", n, maxKeptRenders)
	}
}
