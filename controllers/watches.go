package controllers

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// childWatches are the child kinds one kind's controller watches. A child
// kind the cluster does not serve when the controller starts (its CRD is
// installed later, as with cert-manager or the Prometheus Operator) is
// watched from the first reconcile that renders a child of it and finds it
// served: without the watch, nothing would tell the CR that child changed.
type childWatches struct {
	mapper meta.RESTMapper
	// start indexes gvk by owner and watches it.
	start func(gvk schema.GroupVersionKind) error

	mu      sync.Mutex
	watched []schema.GroupVersionKind
	pending map[schema.GroupVersionKind]bool
}

// add watches gvk if the cluster serves it, and otherwise keeps it for later.
func (w *childWatches) add(gvk schema.GroupVersionKind) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if w.pending == nil {
			w.pending = map[schema.GroupVersionKind]bool{}
		}
		w.pending[gvk] = true
		return err
	}
	if err := w.start(gvk); err != nil {
		return err
	}
	delete(w.pending, gvk)
	w.watched = append(w.watched, gvk)
	return nil
}

// kinds returns the watched child kinds.
func (w *childWatches) kinds() []schema.GroupVersionKind {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]schema.GroupVersionKind(nil), w.watched...)
}

// catchUp watches those of gvks that are not watched yet: kinds not served
// before and served now, and kinds a reloaded template added. It asks the
// cluster only about kinds a render produced: a kind that is never served
// costs nothing while no CR uses it. It returns the kinds it could not
// watch because the cluster does not serve them, as far as it knows.
func (w *childWatches) catchUp(gvks []schema.GroupVersionKind) (unwatched []schema.GroupVersionKind, err error) {
	for _, gvk := range gvks {
		w.mu.Lock()
		watched := slices.Contains(w.watched, gvk)
		w.mu.Unlock()
		if watched {
			continue
		}
		if err := w.add(gvk); err != nil {
			if !meta.IsNoMatchError(err) {
				return nil, err
			}
			unwatched = append(unwatched, gvk)
		}
	}
	return unwatched, nil
}
