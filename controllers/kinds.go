package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/render"
)

// kindStarter starts each kind of the templates on its own. A kind that
// cannot start (its CRD not installed, or refused; its CRs not listable by
// the operator's RBAC) is logged, counted in cuerator_kind_waiting and
// tried again every retry, while the other kinds serve: one broken kind
// must not stop the manager, which a controller whose cache never syncs
// would.
type kindStarter struct {
	// start installs what the kind needs and starts its controller.
	start func(ctx context.Context, kind *render.Kind) error
	retry time.Duration
	log   logr.Logger

	mu      sync.Mutex
	waiting map[schema.GroupVersionKind]*render.Kind
}

// add starts kind, or keeps it waiting for the next retry.
func (k *kindStarter) add(ctx context.Context, kind *render.Kind) {
	err := k.start(ctx, kind)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.waiting == nil {
		k.waiting = map[schema.GroupVersionKind]*render.Kind{}
	}
	if err != nil {
		if _, was := k.waiting[kind.GVK]; !was {
			k.log.Error(err, "kind not started; retried while the other kinds serve", "kind", kind.GVK.String(), "retry", k.retry.String())
		}
		k.waiting[kind.GVK] = kind
		kindWaiting.WithLabelValues(kindLabel(kind.GVK)).Set(1)
		return
	}
	if _, was := k.waiting[kind.GVK]; was {
		k.log.Info("kind started", "kind", kind.GVK.String())
	}
	delete(k.waiting, kind.GVK)
	kindWaiting.WithLabelValues(kindLabel(kind.GVK)).Set(0)
}

// Start tries the waiting kinds again every retry until ctx ends. It runs
// on the leader, as the controllers it adds do.
func (k *kindStarter) Start(ctx context.Context) error {
	ticker := time.NewTicker(k.retry)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			k.mu.Lock()
			kinds := make([]*render.Kind, 0, len(k.waiting))
			for _, kind := range k.waiting {
				kinds = append(kinds, kind)
			}
			k.mu.Unlock()
			for _, kind := range kinds {
				attempt, cancel := context.WithTimeout(ctx, time.Minute)
				k.add(attempt, kind)
				cancel()
			}
		}
	}
}

func (k *kindStarter) NeedLeaderElection() bool { return true }

// servable checks what a kind's controller needs before it starts: the
// cluster serves the kind, and the operator may list its CRs (the
// controller's cache would otherwise wait to sync for ever).
func servable(ctx context.Context, api client.Reader, gvk schema.GroupVersionKind, namespace string) error {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	opts := []client.ListOption{client.Limit(1)}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := api.List(ctx, list, opts...); err != nil {
		return fmt.Errorf("list %s: %w", gvk, err)
	}
	return nil
}
