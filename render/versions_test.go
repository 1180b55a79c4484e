package render_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/versions"
)

var (
	memcachedV1alpha1 = schema.GroupVersionKind{Group: "cache.example.com", Version: "v1alpha1", Kind: "Memcached"}
	memcachedV1beta1  = schema.GroupVersionKind{Group: "cache.example.com", Version: "v1beta1", Kind: "Memcached"}
)

func loadVersions(t *testing.T) *render.Library {
	t.Helper()
	fsys, err := versions.Module()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := render.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func TestVersionsDeclared(t *testing.T) {
	lib := loadVersions(t)
	kind := lib.Kind(memcachedV1beta1)
	if kind == nil {
		t.Fatal("no kind serves v1beta1")
	}
	if lib.Kind(memcachedV1alpha1) != kind {
		t.Errorf("v1alpha1 is not served by the same kind")
	}
	if kind.GVK != memcachedV1beta1 || kind.StorageVersion != "v1beta1" || !kind.MultiVersion() {
		t.Errorf("GVK %s, storage %s, multi-version %v", kind.GVK, kind.StorageVersion, kind.MultiVersion())
	}
	var names []string
	for _, v := range kind.Versions {
		names = append(names, v.Name)
	}
	if !reflect.DeepEqual(names, []string{"v1beta1", "v1alpha1"}) {
		t.Errorf("versions %v", names)
	}
	if v := kind.Version("v1alpha1"); !v.Served || !v.Deprecated || v.PrinterColumns[0].JSONPath != ".spec.size" {
		t.Errorf("v1alpha1: %+v", v)
	}
	// The shipped kinds have one version each.
	for _, k := range loadLibrary(t).Kinds() {
		if k.MultiVersion() || k.StorageVersion != k.GVK.Version {
			t.Errorf("%s: %d versions, storage %s", k.GVK, len(k.Versions), k.StorageVersion)
		}
	}
}

func memcached(version string, spec map[string]any, annotations map[string]string) *unstructured.Unstructured {
	cr := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	cr.SetAPIVersion("cache.example.com/" + version)
	cr.SetKind("Memcached")
	cr.SetName("m")
	cr.SetNamespace("team-a")
	cr.SetAnnotations(annotations)
	return cr
}

func TestConvertBothWays(t *testing.T) {
	kind := loadVersions(t).Kind(memcachedV1beta1)
	old := memcached("v1alpha1", map[string]any{"size": int64(3), "image": "memcached:1.6"}, map[string]string{"team": "a"})
	old.Object["status"] = map[string]any{"observedGeneration": int64(2), "nodes": []any{"p1"}}
	beta, err := kind.Convert(old, "v1beta1")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"replicas": int64(3), "image": "memcached:1.6", "verbose": false}; !reflect.DeepEqual(beta.Object["spec"], want) {
		t.Errorf("v1beta1 spec %v, want %v", beta.Object["spec"], want)
	}
	if beta.GetAPIVersion() != "cache.example.com/v1beta1" || !reflect.DeepEqual(beta.Object["status"], old.Object["status"]) || beta.GetAnnotations()["team"] != "a" {
		t.Errorf("converted object %v", beta.Object)
	}
	back, err := kind.Convert(beta, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Object, old.Object) {
		t.Errorf("round trip:\n got  %v\n want %v", back.Object, old.Object)
	}

	// verbose has no v1alpha1 field: it travels in an annotation.
	verbose := memcached("v1beta1", map[string]any{"replicas": int64(2), "image": "memcached:1.6", "verbose": true}, nil)
	alpha, err := kind.Convert(verbose, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	if a := alpha.GetAnnotations(); len(a) != 1 || a["cache.example.com/v1beta1-verbose"] != "true" {
		t.Errorf("v1alpha1 annotations %v", a)
	}
	again, err := kind.Convert(alpha, "v1beta1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Object, verbose.Object) {
		t.Errorf("round trip through v1alpha1:\n got  %v\n want %v", again.Object, verbose.Object)
	}
}

// An old-version CR renders offline as the API server would serve it to
// the operator, and its errors name its own fields.
func TestRenderOldVersion(t *testing.T) {
	lib := loadVersions(t)
	cr := readCR(t, "../examples/memcached-sample.yaml")
	out, err := lib.RenderCR(cr)
	if err != nil {
		t.Fatal(err)
	}
	wantAt(t, out.Objects[0], "spec.replicas", int64(3))
	bad := memcached("v1alpha1", map[string]any{"size": int64(30)}, nil)
	_, err = lib.RenderCR(bad)
	if err == nil || !strings.Contains(err.Error(), "spec.size: invalid value 30 (out of bound <=10)") {
		t.Errorf("error %v, want one naming spec.size", err)
	}
}

// A kind of two versions whose api package is base with extra.
func twoVersionModule(extra string) fstest.MapFS {
	const api = `package api

#CRD: {group: "test.cuerator.dev", version: "v2", kind: "Thing", plural: "things", scope: "Namespaced"%s}
#Spec: {n: int | *1}
#Status: {...}
%s
`
	crd, rest, _ := strings.Cut(extra, "\n")
	return fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"test.cuerator.dev/things@v0\"\nlanguage: version: \"v0.17.0\"\n")},
		"thing/api/api.cue":  {Data: []byte(fmt.Sprintf(api, crd, rest))},
		"thing/thing.cue": {Data: []byte(`package thing

import "test.cuerator.dev/things/thing/api"

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: {}
`)},
	}
}

const goodConversions = `
#Versions: v1: #Spec: {m: int | *1}
#Convert: v1: v2: {in: {...}, out: spec: n: in.spec.m}
#Convert: v2: v1: {in: {...}, out: spec: m: in.spec.n}
`

func TestBadVersionDeclarations(t *testing.T) {
	if _, err := render.Load(twoVersionModule(goodConversions)); err != nil {
		t.Fatalf("the well-formed module: %v", err)
	}
	for _, c := range []struct {
		name, extra, want string
	}{
		{"a direction missing", `
#Versions: v1: #Spec: {m: int}
#Convert: v1: v2: {in: {...}, out: spec: n: in.spec.m}
`, "#Convert.v2.v1 is not defined: v1 is a version of Thing, and the API server converts its objects to and from v2, the template's version, so both directions are needed"},
		{"no conversions", `
#Versions: v1: #Spec: {m: int}
`, "#Convert is not defined: Thing serves v2, v1"},
		{"storage version unknown", `, storageVersion: "v3"
#Versions: v1: #Spec: {m: int}
`, `#CRD.storageVersion: "v3" is not a version of Thing (v2, v1)`},
		{"the template's version again", `
#Versions: v2: #Spec: {m: int}
`, "#Versions.v2: v2 is #CRD.version, the version the template renders"},
		{"a version without a schema", `
#Versions: v1: {served: true}
`, "#Versions.v1: #Spec is not defined"},
		{"a conversion to an unknown version", goodConversions + `
#Convert: v2: v3: {in: {...}, out: spec: {}}
`, `#Convert.v2.v3: "v3" is not a version of Thing`},
		{"a conversion between two other versions", `
#Versions: v1: #Spec: {m: int}
#Versions: v3: #Spec: {m: int}
#Convert: v1: v3: {in: {...}, out: spec: m: in.spec.m}
`, "#Convert.v1.v3: conversions go to and from v2, the template's version"},
		{"a closed in", `
#Versions: v1: #Spec: {m: int}
#Convert: v1: v2: {in: spec: {m: int}, out: spec: n: in.spec.m}
#Convert: v2: v1: {in: {...}, out: spec: m: in.spec.n}
`, "#Convert.v1.v2: in does not allow metadata"},
		{"no out.spec", `
#Versions: v1: #Spec: {m: int}
#Convert: v1: v2: {in: {...}, out: {}}
#Convert: v2: v1: {in: {...}, out: spec: m: in.spec.n}
`, "#Convert.v1.v2: out.spec is not defined"},
		{"conversions of one version", `
#Convert: v2: v1: {in: {...}, out: spec: {}}
`, "#Convert: Thing has one version, v2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render.Load(twoVersionModule(c.extra))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\nwant one containing %q", err, c.want)
			}
		})
	}
}

// A conversion that fails names the conversion and the field.
func TestConversionErrorNamesTheField(t *testing.T) {
	lib, err := render.Load(twoVersionModule(`
#Versions: v1: #Spec: {m: int | *1}
#Convert: v1: v2: {in: {...}, out: spec: n: in.spec.m & <5}
#Convert: v2: v1: {in: {...}, out: spec: m: in.spec.n}
`))
	if err != nil {
		t.Fatal(err)
	}
	kind := lib.Kinds()[0]
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "test.cuerator.dev/v1", "kind": "Thing", "metadata": map[string]any{"name": "x"}, "spec": map[string]any{"m": int64(7)}}}
	_, err = kind.Convert(obj, "v2")
	if want := "Thing: #Convert.v1.v2: out.spec.n: invalid value 7 (out of bound <5)"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// A CR read in another version of the kind (a controller older than its
// templates) renders through the template's version, and its children's
// owner is the version it was read in; a version the templates no longer
// declare is a template error that says so.
func TestRenderReadInAnotherVersion(t *testing.T) {
	kind := loadVersions(t).Kind(memcachedV1alpha1)
	cr := memcached("v1alpha1", map[string]any{"size": int64(2), "image": "memcached:1.6"}, map[string]string{"cache.example.com/v1beta1-verbose": "true"})
	cr.SetUID("5f1c3a8e-0000-4000-8000-000000000009")
	out, err := kind.Render(cr)
	if err != nil {
		t.Fatal(err)
	}
	d := out.Objects[0]
	wantAt(t, d, "spec.replicas", int64(2))
	wantAt(t, d, "spec.template.spec.containers[0].args", []any{"-vv"})
	if refs := d.GetOwnerReferences(); len(refs) != 1 || refs[0].APIVersion != "cache.example.com/v1alpha1" {
		t.Errorf("ownerReferences %v, want the v1alpha1 CR", refs)
	}
	gone := memcached("v1alpha0", map[string]any{"size": int64(2)}, nil)
	var te *render.TemplateError
	if _, err := kind.Render(gone); !errors.As(err, &te) || !strings.Contains(err.Error(), "the CR is read as cache.example.com/v1alpha0, a version the templates no longer declare (cache.example.com/v1beta1, cache.example.com/v1alpha1)") {
		t.Errorf("error %v", err)
	}
	if _, err := loadVersions(t).RenderCR(gone); err == nil || !strings.Contains(err.Error(), "no template serves cache.example.com/v1alpha0, Kind=Memcached") {
		t.Errorf("offline: %v", err)
	}
}
