package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
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
}

// Setup registers one controller per kind of lib with mgr. Kinds come from
// the template library; none is coded here.
func Setup(mgr ctrl.Manager, lib *engine.Library, opts Options) error {
	applier := engine.NewApplier(mgr.GetClient())
	for _, kind := range lib.Kinds() {
		r := &Reconciler{
			Client:   mgr.GetClient(),
			Kind:     kind,
			Applier:  applier,
			Recorder: mgr.GetEventRecorder("cuerator"),
			Timeout:  opts.ReconcileTimeout,
		}
		cr := &unstructured.Unstructured{}
		cr.SetGroupVersionKind(kind.GVK)
		b := ctrl.NewControllerManagedBy(mgr).
			Named(strings.ToLower(kind.GVK.Kind + "." + kind.GVK.Group)).
			// Status writes bump no generation: reconciling on them would loop.
			For(cr, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
			WithOptions(controller.Options{
				MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
				RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](opts.BackoffMin, opts.BackoffMax),
			})
		for _, gvk := range kind.ChildKinds {
			child := &unstructured.Unstructured{}
			child.SetGroupVersionKind(gvk)
			b = b.Owns(child)
		}
		if err := b.Complete(r); err != nil {
			return fmt.Errorf("set up controller for %s: %w", kind.GVK, err)
		}
	}
	return nil
}
