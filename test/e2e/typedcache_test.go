package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// The cache of children holds the kinds Kubernetes serves typed, and the
// engine reads them unstructured: what it reads must be, field for field,
// what the API server serves, or a digest recorded from an apply response
// would never match the cache again and a restart would rewrite children.
// Every child the shipped samples render, applied to the cluster, is read
// through a typed cache configured as the operator's and compared with the
// API server's own answer.
func TestTypedCacheReadsAsServed(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "typed-cache")
	api, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var applied []*unstructured.Unstructured
	typedKinds := map[string]bool{}
	for _, file := range files {
		for _, cr := range manifestsIn(t, file) {
			kind := lib.Kind(cr.GroupVersionKind())
			if kind == nil {
				t.Fatalf("%s: no kind %s", file, cr.GroupVersionKind())
			}
			cr.SetNamespace(ns)
			rendered, err := kind.Render(cr)
			if err != nil {
				t.Fatalf("render %s: %v", cr.GetName(), err)
			}
			for _, obj := range rendered.Objects {
				if _, untyped := apply.CachedObject(clientgoscheme.Scheme, obj.GroupVersionKind()).(*unstructured.Unstructured); untyped {
					continue // another operator's kind: cached unstructured, as read
				}
				obj = obj.DeepCopy()
				err := api.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("typed-cache-test"), client.ForceOwnership)
				if err != nil {
					t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
				applied = append(applied, obj)
				typedKinds[obj.GetKind()] = true
			}
		}
	}
	for _, want := range []string{"Deployment", "Service", "Secret", "StatefulSet"} {
		if !typedKinds[want] {
			t.Fatalf("the samples rendered no %s held typed; typed: %v", want, typedKinds)
		}
	}

	c, err := cache.New(apply.CacheConfig(testCluster.Config), cache.Options{
		Scheme:            clientgoscheme.Scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	reader := apply.TypedReads(c, clientgoscheme.Scheme)
	for _, obj := range applied {
		what := fmt.Sprintf("%s %s", obj.GetKind(), obj.GetName())
		eventually(t, time.Minute, what+" read through the typed cache as the API server serves it", func() error {
			served := &unstructured.Unstructured{}
			served.SetGroupVersionKind(obj.GroupVersionKind())
			if err := api.Get(ctx, client.ObjectKeyFromObject(obj), served); err != nil {
				return err
			}
			cached := &unstructured.Unstructured{}
			cached.SetGroupVersionKind(obj.GroupVersionKind())
			if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), cached); err != nil {
				return err
			}
			if err := sameObject("get", served, cached); err != nil {
				return err
			}
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(obj.GroupVersionKind().GroupVersion().WithKind(obj.GetKind() + "List"))
			if err := reader.List(ctx, list, client.InNamespace(ns)); err != nil {
				return err
			}
			for i := range list.Items {
				if list.Items[i].GetName() == obj.GetName() {
					return sameObject("list", served, &list.Items[i])
				}
			}
			return fmt.Errorf("not in the cached list of %d", len(list.Items))
		})
	}
	t.Logf("%d children of %d kinds read typed and unchanged: %v", len(applied), len(typedKinds), typedKinds)
}

// sameObject says how cached differs from served, if it does.
func sameObject(how string, served, cached *unstructured.Unstructured) error {
	if cached.GetResourceVersion() != served.GetResourceVersion() {
		return fmt.Errorf("%s: the cache holds version %s, the server %s", how, cached.GetResourceVersion(), served.GetResourceVersion())
	}
	if equality.Semantic.DeepEqual(served.Object, cached.Object) {
		return nil
	}
	s, _ := json.Marshal(served.Object)
	c, _ := json.Marshal(cached.Object)
	return fmt.Errorf("%s differs:\nserved %s\ncached %s", how, s, c)
}
