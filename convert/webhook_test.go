package convert_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/convert"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/versions"
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

// review sends objects to the handler in one ConversionReview, as the API
// server does, and returns the response.
func review(t *testing.T, h http.Handler, to string, objs ...*unstructured.Unstructured) *apiextensionsv1.ConversionResponse {
	t.Helper()
	req := apiextensionsv1.ConversionReview{Request: &apiextensionsv1.ConversionRequest{UID: types.UID("review-1"), DesiredAPIVersion: to}}
	req.APIVersion, req.Kind = "apiextensions.k8s.io/v1", "ConversionReview"
	for _, o := range objs {
		b, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		req.Request.Objects = append(req.Request.Objects, runtime.RawExtension{Raw: b})
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, crdgen.WebhookPath, bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var resp apiextensionsv1.ConversionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Response == nil || resp.Response.UID != "review-1" {
		t.Fatalf("response %+v does not answer the request", resp.Response)
	}
	return resp.Response
}

func objects(t *testing.T, resp *apiextensionsv1.ConversionResponse) []*unstructured.Unstructured {
	t.Helper()
	if resp.Result.Status != "Success" {
		t.Fatalf("conversion failed: %s", resp.Result.Message)
	}
	var out []*unstructured.Unstructured
	for _, raw := range resp.ConvertedObjects {
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(raw.Raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// defaulter applies a CRD version's defaults as the API server does before
// it stores or converts an object.
func defaulter(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, version string) func(*unstructured.Unstructured) {
	t.Helper()
	for _, v := range crd.Spec.Versions {
		if v.Name != version {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			t.Fatal(err)
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatal(err)
		}
		return func(o *unstructured.Unstructured) { defaulting.Default(o.Object, s) }
	}
	t.Fatalf("CRD %s has no version %s", crd.Name, version)
	return nil
}

// Every Memcached of examples/ and of the corpus, as the API server holds
// it in v1alpha1, converts to v1beta1 and back unchanged, in one review
// and through the webhook's HTTP handler.
func TestRoundTrips(t *testing.T) {
	lib := loadVersions(t)
	kind := lib.Kinds()[slicesIndex(lib, "Memcached")]
	crd, err := crdgen.Generate(kind)
	if err != nil {
		t.Fatal(err)
	}
	defaultV1alpha1 := defaulter(t, crd, "v1alpha1")
	files, _ := filepath.Glob("../test/corpus/valid/memcached-*.yaml")
	files = append(files, "../examples/memcached-sample.yaml")
	var originals []*unstructured.Unstructured
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		crs, err := render.ReadManifests(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, cr := range crs {
			cr.SetNamespace("default")
			defaultV1alpha1(cr)
			originals = append(originals, cr)
		}
	}
	if len(originals) < 4 {
		t.Fatalf("%d Memcached CRs found", len(originals))
	}
	h := &convert.Handler{Library: lib, Log: logr.Discard()}
	beta := objects(t, review(t, h, "cache.example.com/v1beta1", originals...))
	for i, b := range beta {
		if b.GetAPIVersion() != "cache.example.com/v1beta1" || b.Object["spec"].(map[string]any)["replicas"] != originals[i].Object["spec"].(map[string]any)["size"] {
			t.Errorf("%s: v1beta1 form %v", originals[i].GetName(), b.Object)
		}
	}
	back := objects(t, review(t, h, "cache.example.com/v1alpha1", beta...))
	for i, b := range back {
		if !reflect.DeepEqual(b.Object, originals[i].Object) {
			t.Errorf("%s: round trip\n got  %v\n want %v", originals[i].GetName(), b.Object, originals[i].Object)
		}
	}

	// And the other way, with verbose, which v1alpha1 keeps in an annotation.
	verbose := beta[0].DeepCopy()
	verbose.Object["spec"].(map[string]any)["verbose"] = true
	alpha := objects(t, review(t, h, "cache.example.com/v1alpha1", verbose))
	again := objects(t, review(t, h, "cache.example.com/v1beta1", alpha...))
	if !reflect.DeepEqual(again[0].Object, verbose.Object) {
		t.Errorf("round trip through v1alpha1\n got  %v\n want %v", again[0].Object, verbose.Object)
	}
}

func slicesIndex(lib *render.Library, kind string) int {
	for i, k := range lib.Kinds() {
		if k.GVK.Kind == kind {
			return i
		}
	}
	return -1
}

// A review the handler cannot serve fails as a whole, naming the object.
func TestReviewFailures(t *testing.T) {
	lib := loadVersions(t)
	h := &convert.Handler{Library: lib, Log: logr.Discard()}
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": "m", "namespace": "ns"},
		"spec":     map[string]any{"image": "memcached:1.6"},
	}}
	for _, c := range []struct {
		to   string
		obj  *unstructured.Unstructured
		want string
	}{
		{"cache.example.com/v1beta1", bad, "Memcached ns/m: Memcached: #Convert.v1alpha1.v1beta1: "},
		{"cache.example.com/v2", bad, "Memcached ns/m: Memcached has no version v2"},
		{"other.example.com/v1", bad, "cannot convert cache.example.com/v1alpha1 to another group"},
	} {
		resp := review(t, h, c.to, c.obj)
		if resp.Result.Status != "Failure" || !strings.Contains(resp.Result.Message, c.want) || len(resp.ConvertedObjects) != 0 {
			t.Errorf("to %s: result %+v, %d objects; want a failure containing %q", c.to, resp.Result, len(resp.ConvertedObjects), c.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/convert", strings.NewReader("{}")))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("a review without request: status %d", rec.Code)
	}
}
