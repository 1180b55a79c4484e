package render

import (
	"fmt"
	"os"
	"reflect"
	"testing"

	"cuelang.org/go/cue/parser"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/schemas"
)

func useOf(t *testing.T, src string) *observedUse {
	t.Helper()
	f, err := parser.ParseFile("template.cue", src)
	if err != nil {
		t.Fatal(err)
	}
	u := newObservedUse()
	u.file(f, true)
	return u
}

func TestObservedUseReadsWhatTheSourceSpells(t *testing.T) {
	u := useOf(t, `
observed: children: [string]: status: _
objects: config: metadata: annotations: uid: observed.children.secret.metadata.uid
status: ready: *observed.children.deployment.status.readyReplicas | 0
if observed.children.job != _|_ { status: job: "there" }
pods: len(observed.pods)
`)
	if u.all {
		t.Fatal("a template that spells every reference out reads everything")
	}
	if !u.fields[""]["status"] || !u.fields["secret"]["metadata"] || !u.fields["deployment"]["status"] {
		t.Errorf("fields = %v; want status of every child, metadata of secret", u.fields)
	}
	if u.fields["secret"]["spec"] || u.fields["deployment"]["spec"] {
		t.Errorf("fields = %v; nothing reads a spec", u.fields)
	}
	if !u.whole["job"] {
		t.Errorf("whole = %v; the job is read as a whole", u.whole)
	}

	obs := Observed{Children: map[string]any{
		"deployment": map[string]any{"metadata": map[string]any{"name": "d"}, "spec": map[string]any{"replicas": 3}, "status": map[string]any{"readyReplicas": 2}},
		"secret":     map[string]any{"metadata": map[string]any{"uid": "u"}, "data": map[string]any{"k": "v"}},
		"job":        map[string]any{"spec": map[string]any{"parallelism": 1}},
		"service":    map[string]any{"spec": map[string]any{"clusterIP": "10.0.0.1"}},
	}}
	got := u.trim(obs).Children
	want := map[string]any{
		"deployment": map[string]any{"status": map[string]any{"readyReplicas": 2}},
		"secret":     map[string]any{"metadata": map[string]any{"uid": "u"}},
		"job":        map[string]any{"spec": map[string]any{"parallelism": 1}},
		// service: nothing read of it, and a child with nothing to show is
		// absent, as one not there yet is.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("trimmed = %v\nwant %v", got, want)
	}
	if _, ok := obs.Children["deployment"].(map[string]any)["spec"]; !ok {
		t.Error("trim changed the observation it was given")
	}
}

func TestObservedUseReadsEverythingItCannotTell(t *testing.T) {
	for name, src := range map[string]string{
		"by a computed key":      `k: "x", status: a: observed.children[k].status`,
		"in a comprehension":     `status: n: len([for k, v in observed.children {k}])`,
		"through a let":          `let o = observed, status: a: o.children.x.status`,
		"as a whole":             `status: a: #F & {in: observed}`,
		"through an alias":       `O=observed: children: [string]: status: _, status: a: O.children.x.spec`,
		"declared by definition": `observed: #Observed, #Observed: children: [string]: _`,
		"declared by embedding":  `observed: { #Base, children: x: status: _ }`,
		"declared below the top": `if true { observed: children: x: spec: _ }`,
	} {
		t.Run(name, func(t *testing.T) {
			if u := useOf(t, src); !u.all {
				t.Errorf("reads all = false; fields %v, whole %v", u.fields, u.whole)
			}
		})
	}
}

// Every shipped kind projects the same status from the live children cut
// to what it reads, with the status selected alone, as the whole template
// filled with the whole of them gives; and the cut leaves out what they do
// not read.
func TestTrimmedObservationProjectsTheSameStatus(t *testing.T) {
	lib, err := Load(schemas.FS, InProcess())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lib.Close)
	samples := map[string]string{
		"Memcached":     "../examples/memcached-sample.yaml",
		"WebApp":        "../examples/webapp-sample.yaml",
		"Database":      "../examples/database-sample.yaml",
		"Monitoring":    "../examples/monitoring-sample.yaml",
		"SearchCluster": "../examples/searchcluster-sample.yaml",
	}
	for _, kind := range lib.Kinds() {
		t.Run(kind.GVK.Kind, func(t *testing.T) {
			path, ok := samples[kind.GVK.Kind]
			if !ok {
				t.Fatalf("no sample of %s", kind.GVK.Kind)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			crs, err := ReadManifests(f)
			if err != nil || len(crs) != 1 {
				t.Fatalf("%s: %d objects, %v", path, len(crs), err)
			}
			cr := crs[0]
			cr.SetNamespace("ns")
			cr.SetUID("00000000-0000-4000-8000-000000000001")
			rendered, err := kind.Render(cr)
			if err != nil {
				t.Fatal(err)
			}
			full := Observed{Children: map[string]any{}}
			for i, obj := range rendered.Objects {
				live := obj.DeepCopy()
				live.SetUID(types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+2)))
				live.SetResourceVersion("12345")
				live.Object["status"] = map[string]any{"replicas": int64(2), "readyReplicas": int64(1), "observedGeneration": int64(1),
					"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
				full.Children[rendered.Keys[i]] = live.Object
			}
			full = rendered.withInputs(full).normalized()
			trimmed := kind.observed.trim(full)
			whole, err := statusOf(kind.fillWith(rendered.input, rendered.random, full))
			if err != nil {
				t.Fatal(err)
			}
			cut, err := kind.projectStatus(rendered.input, rendered.random, trimmed)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(whole, cut) {
				t.Errorf("status from the cut observation = %v\nfrom the whole = %v", cut, whole)
			}
			if kind.observed.all {
				t.Fatalf("%s's template reads observed in a way the source does not spell out", kind.GVK.Kind)
			}
			for key, live := range trimmed.Children {
				if _, spec := live.(map[string]any)["spec"]; spec && !kind.observed.whole[key] && !kind.observed.fields[key]["spec"] {
					t.Errorf("child %s is sent with its spec, which the template does not read", key)
				}
			}
		})
	}
}
