package apply

import (
	"bytes"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

func splitPath(p string) []string { return strings.Split(p, ".") }

// without returns a copy of obj without the fields at paths.
func without(obj *unstructured.Unstructured, paths []string) *unstructured.Unstructured {
	if len(paths) == 0 {
		return obj
	}
	out := obj.DeepCopy()
	for _, p := range paths {
		unstructured.RemoveNestedField(out.Object, splitPath(p)...)
	}
	return out
}

// only returns what applies obj's fields at paths alone: its identity and
// those values it has.
func only(obj *unstructured.Unstructured, paths []string) *unstructured.Unstructured {
	out := &unstructured.Unstructured{}
	out.SetGroupVersionKind(obj.GroupVersionKind())
	out.SetNamespace(obj.GetNamespace())
	out.SetName(obj.GetName())
	for _, p := range paths {
		if v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, splitPath(p)...); ok {
			// SetNestedField copies v; it fails only where obj's own value
			// on the path is not an object, which then has no such field.
			_ = unstructured.SetNestedField(out.Object, v, splitPath(p)...)
		}
	}
	return out
}

// withLiveValues returns obj with live's values at paths, where live has
// them.
func withLiveValues(obj, live *unstructured.Unstructured, paths []string) *unstructured.Unstructured {
	if live == nil || len(paths) == 0 {
		return obj
	}
	out := obj.DeepCopy()
	for _, p := range paths {
		if v, ok, _ := unstructured.NestedFieldNoCopy(live.Object, splitPath(p)...); ok {
			// SetNestedField copies v; it fails only where obj's own value
			// on the path is not an object, which then has no such field.
			_ = unstructured.SetNestedField(out.Object, v, splitPath(p)...)
		}
	}
	return out
}

// ownsAny reports whether manager's entries of live's managedFields hold
// one of paths (or a field under one).
func ownsAny(live *unstructured.Unstructured, manager string, paths []string) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != manager || mf.FieldsV1 == nil {
			continue
		}
		owned := &fieldpath.Set{}
		if err := owned.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			continue
		}
		found := false
		owned.Iterate(func(q fieldpath.Path) {
			held := q.String()
			for _, p := range paths {
				want := "." + p
				if held == want || strings.HasPrefix(held, want+".") || strings.HasPrefix(held, want+"[") {
					found = true
				}
			}
		})
		if found {
			return true
		}
	}
	return false
}
