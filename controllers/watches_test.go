package controllers

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A child kind the cluster does not serve is reported unwatched, and is
// watched by the first catch-up after the cluster serves it: the reconcile
// that applied a child of it looks again, rather than leave its CR deaf to
// that child.
func TestCatchUpWatchesAKindOnceServed(t *testing.T) {
	innodb := schema.GroupVersionKind{Group: "mysql.oracle.com", Version: "v2", Kind: "InnoDBCluster"}
	mapper := meta.NewDefaultRESTMapper(nil)
	var started []schema.GroupVersionKind
	w := &childWatches{mapper: mapper, start: func(gvk schema.GroupVersionKind) error {
		started = append(started, gvk)
		return nil
	}}

	unwatched, err := w.catchUp([]schema.GroupVersionKind{innodb})
	if err != nil || !slices.Equal(unwatched, []schema.GroupVersionKind{innodb}) || len(started) != 0 {
		t.Fatalf("not served: unwatched %v, err %v, watches started %v", unwatched, err, started)
	}

	mapper.Add(innodb, meta.RESTScopeNamespace)
	unwatched, err = w.catchUp([]schema.GroupVersionKind{innodb})
	if err != nil || len(unwatched) != 0 || !slices.Equal(started, []schema.GroupVersionKind{innodb}) {
		t.Fatalf("served: unwatched %v, err %v, watches started %v", unwatched, err, started)
	}
	if !slices.Equal(w.kinds(), []schema.GroupVersionKind{innodb}) {
		t.Errorf("watched kinds %v", w.kinds())
	}
	if _, err := w.catchUp([]schema.GroupVersionKind{innodb}); err != nil || len(started) != 1 {
		t.Errorf("a watched kind was watched again: %v, err %v", started, err)
	}
}
