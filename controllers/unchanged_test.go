package controllers

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A spec, label or annotation change that lands between a reconcile's read
// of its CR and its status write shares the resourceVersion that write
// returns: it must still be reconciled, not taken for the settled CR.
func TestChangeWithinOwnStatusWriteIsNotUnchanged(t *testing.T) {
	rendered := &unstructured.Unstructured{}
	rendered.SetName("w")
	rendered.SetNamespace("ns")
	rendered.SetUID("uid-1")
	rendered.SetGeneration(2)
	rendered.SetLabels(map[string]string{"shard": "a"})
	rendered.SetAnnotations(map[string]string{"note": "x"})

	r := &Reconciler{}
	r.settled.put(client.ObjectKeyFromObject(rendered), settled{
		uid: rendered.GetUID(), version: "102", generation: rendered.GetGeneration(), meta: metaDigest(rendered),
	})
	for name, change := range map[string]func(*unstructured.Unstructured){
		"spec":       func(u *unstructured.Unstructured) { u.SetGeneration(3) },
		"label":      func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"shard": "b"}) },
		"annotation": func(u *unstructured.Unstructured) { u.SetAnnotations(map[string]string{"note": "y"}) },
	} {
		cr := rendered.DeepCopy()
		cr.SetResourceVersion("102") // the version the status write returned
		change(cr)
		if r.unchanged(context.Background(), cr, nil) {
			t.Errorf("a %s change in the version of the reconcile's own status write is taken as unchanged", name)
		}
	}
}

// lagging is a cache that holds a CR at old for its first lag reads, then
// at its version now.
type lagging struct {
	client.Client
	lag      int
	old, now string
	reads    int
}

func (l *lagging) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	l.reads++
	obj.SetName(key.Name)
	obj.SetNamespace(key.Namespace)
	obj.SetResourceVersion(l.now)
	if l.reads <= l.lag {
		obj.SetResourceVersion(l.old)
	}
	return nil
}

// A reconcile that follows this process's own status write reads the CR as
// that write left it: from the cache once it holds it, else from the API
// server.
func TestReadWaitsForOwnStatusWrite(t *testing.T) {
	key := client.ObjectKey{Namespace: "ns", Name: "w"}
	for name, tc := range map[string]struct {
		wrote     string
		cacheLag  int
		wantCache int // cache reads
		wantAPI   int // API server reads
	}{
		"no write of ours":             {wrote: "", cacheLag: 1, wantCache: 1},
		"cache holds our write":        {wrote: "100", cacheLag: 0, wantCache: 1},
		"cache catches up":             {wrote: "100", cacheLag: 3, wantCache: 4},
		"cache does not catch up":      {wrote: "100", cacheLag: 1 << 20, wantAPI: 1},
		"newer than our write":         {wrote: "90", cacheLag: 0, wantCache: 1},
		"versions that do not compare": {wrote: "x", cacheLag: 1, wantCache: 1},
	} {
		t.Run(name, func(t *testing.T) {
			cache := &lagging{lag: tc.cacheLag, old: "99", now: "100"}
			api := &lagging{now: "100"}
			r := &Reconciler{Client: cache, Reader: api}
			if tc.wrote != "" {
				r.written.mark(key, tc.wrote)
			}
			cr := &unstructured.Unstructured{}
			if err := r.read(context.Background(), key, cr); err != nil {
				t.Fatal(err)
			}
			if tc.wantAPI > 0 {
				if api.reads != tc.wantAPI || cr.GetResourceVersion() != "100" {
					t.Errorf("%d API reads, version %s; want %d, 100", api.reads, cr.GetResourceVersion(), tc.wantAPI)
				}
				return
			}
			if api.reads != 0 || cache.reads != tc.wantCache {
				t.Errorf("%d cache and %d API reads, want %d and none", cache.reads, api.reads, tc.wantCache)
			}
		})
	}
}
