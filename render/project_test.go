package render_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/cuerator/cuerator/render"
)

// The status a render evaluates along with the children is, for every
// shipped kind, the one a projection gives right after those children are
// created and have reported nothing (the apply's response: no status yet).
// A reconcile that has just created them writes it without an evaluation
// of its own.
func TestStatusAsRenderedIsThatOfChildrenJustCreated(t *testing.T) {
	for _, via := range []struct {
		name string
		opts []render.Option
	}{{"in process", []render.Option{render.InProcess()}}, {"in a worker", nil}} {
		lib := loadLibrary(t, via.opts...)
		for _, kind := range lib.Kinds() {
			sample, ok := examples[kind.GVK.Kind]
			if !ok {
				continue
			}
			t.Run(via.name+"/"+kind.GVK.Kind, func(t *testing.T) {
				cr := readCR(t, sample)
				cr.SetNamespace("ns")
				cr.SetUID("00000000-0000-4000-8000-000000000001")
				out, err := kind.Render(cr)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := out.StatusAsRendered()
				if !ok {
					t.Fatal("a shipped kind's status is not concrete at render")
				}
				created := render.Observed{Children: map[string]any{}}
				for i, obj := range out.Objects {
					live := obj.DeepCopy()
					live.SetResourceVersion("1")
					live.SetUID("00000000-0000-4000-8000-000000000002")
					live.Object["status"] = map[string]any{}
					created.Children[out.Keys[i]] = live.Object
				}
				want, err := out.Status(created)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("status as rendered:\n%v\nprojected from the children just created:\n%v", got, want)
				}
			})
		}
	}
}

// A status that needs what is observed is not concrete at render: the
// reconcile projects it.
func TestStatusAsRenderedNeedsConcreteness(t *testing.T) {
	for name, tc := range map[string]struct {
		status string
		known  bool
		want   map[string]any
	}{
		"from the spec alone":   {`status: name: cr.metadata.name`, true, map[string]any{"name": "x"}},
		"with a default":        {`status: ready: *observed.children.config.status.ready | false`, true, map[string]any{"ready": false}},
		"none":                  {``, true, nil},
		"from a child's status": {`status: uid: observed.children.config.metadata.uid`, false, nil},
	} {
		t.Run(name, func(t *testing.T) {
			dir := moduleWith(t, plainModule, `package x
childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: {}}
observed: children: [string]: _
objects: config: {apiVersion: "v1", kind: "ConfigMap", metadata: name: cr.metadata.name}
`+tc.status+"\n")
			lib, err := render.Load(os.DirFS(dir), render.InProcess())
			if err != nil {
				t.Fatal(err)
			}
			out, err := lib.Kinds()[0].Render(graphCR())
			if err != nil {
				t.Fatal(err)
			}
			got, known := out.StatusAsRendered()
			if known != tc.known || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("StatusAsRendered = %v, %v; want %v, %v", got, known, tc.want, tc.known)
			}
		})
	}
}
