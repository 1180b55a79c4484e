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
