package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/cuerator/cuerator/engine"
)

// Options tune every kind's controller.
type Options struct {
	MaxConcurrentReconciles int
	ReconcileTimeout        time.Duration
	// A failing CR is retried after BackoffMin, doubling up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// ConflictRetry is how often a CR blocked by a child it does not own
	// checks again for the adopt annotation.
	ConflictRetry time.Duration
}

// Setup registers one controller per kind of lib with mgr. Kinds come from
// the template library; none is coded here.
func Setup(mgr ctrl.Manager, lib *engine.Library, opts Options) error {
	applier := engine.NewApplier(mgr.GetClient(), mgr.GetAPIReader())
	for _, kind := range lib.Kinds() {
		r := &Reconciler{
			Client:        mgr.GetClient(),
			Kind:          kind,
			Applier:       applier,
			Recorder:      mgr.GetEventRecorder("cuerator"),
			Timeout:       opts.ReconcileTimeout,
			ConflictRetry: opts.ConflictRetry,
		}
		cr := &unstructured.Unstructured{}
		cr.SetGroupVersionKind(kind.GVK)
		b := ctrl.NewControllerManagedBy(mgr).
			Named(strings.ToLower(kind.GVK.Kind+"."+kind.GVK.Group)).
			// Status writes bump no generation: reconciling on them would loop.
			For(cr, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
			WithOptions(controller.Options{
				MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
				RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](opts.BackoffMin, opts.BackoffMax),
			})
		for _, gvk := range kind.ChildKinds {
			// A watch on a kind the cluster does not serve would fail the
			// manager; such children are reported when a CR produces them.
			if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				mgr.GetLogger().Info("not watching a child kind the cluster does not serve", "kind", kind.GVK.Kind, "child", gvk.String(), "reason", err.Error())
				continue
			}
			child := &unstructured.Unstructured{}
			child.SetGroupVersionKind(gvk)
			b = b.Watches(child, handler.EnqueueRequestsFromMapFunc(ownerOf(kind)))
		}
		if err := b.Complete(r); err != nil {
			return fmt.Errorf("set up controller for %s: %w", kind.GVK, err)
		}
	}
	return nil
}

// ownerOf maps a child to its CR by owner labels rather than ownerReference,
// so that children kept without one (Orphan, Retain) are watched too.
func ownerOf(kind *engine.Kind) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		if owner, ok := kind.OwnerOf(obj); ok {
			return []reconcile.Request{{NamespacedName: owner}}
		}
		return nil
	}
}
