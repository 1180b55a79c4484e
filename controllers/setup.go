package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/render"
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
	// TemplatesDir, when set, is the template module lib was loaded from:
	// the operator installs its kinds' CRDs and follows changes to it.
	TemplatesDir string
	// TemplatesPoll is how often TemplatesDir is checked for changes.
	TemplatesPoll time.Duration
}

// Setup registers one controller per kind of lib with mgr. Kinds come from
// the template library; none is coded here.
func Setup(mgr ctrl.Manager, lib *render.Library, opts Options) error {
	s := &setup{
		mgr:       mgr,
		opts:      opts,
		applier:   apply.NewApplier(mgr.GetClient(), mgr.GetAPIReader()),
		templates: &templates{lib: lib},
		resyncs:   map[schema.GroupVersionKind]chan event.GenericEvent{},
	}
	var direct client.Client
	if opts.TemplatesDir != "" {
		// The cache does not run yet: CRDs go through a direct client.
		var err error
		if direct, err = client.New(mgr.GetConfig(), client.Options{}); err != nil {
			return err
		}
	}
	for _, kind := range lib.Kinds() {
		if direct != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := installCRD(ctx, direct, kind)
			cancel()
			if err != nil {
				return fmt.Errorf("install CRD of %s: %w", kind.GVK, err)
			}
		}
		if err := s.addController(kind); err != nil {
			return err
		}
	}
	if opts.TemplatesDir == "" {
		return nil
	}
	digest, err := render.DigestFS(os.DirFS(opts.TemplatesDir))
	if err != nil {
		return err
	}
	log := mgr.GetLogger().WithName("templates")
	return mgr.Add(&templateWatcher{
		dir:       opts.TemplatesDir,
		interval:  opts.TemplatesPoll,
		templates: s.templates,
		digest:    digest,
		addKind: func(ctx context.Context, kind *render.Kind) error {
			if err := installCRD(ctx, mgr.GetClient(), kind); err != nil {
				return err
			}
			return s.addController(kind)
		},
		resync: func(ctx context.Context) { resyncAll(ctx, mgr.GetClient(), s.resyncs) },
		log:    log.Info,
		logErr: log.Error,
	})
}

type setup struct {
	mgr       ctrl.Manager
	opts      Options
	applier   *apply.Applier
	templates *templates
	// resyncs feed each kind's controller every CR again after a template
	// change.
	resyncs map[schema.GroupVersionKind]chan event.GenericEvent
}

// addController starts reconciling one kind: its CRs, and every child kind
// its template lists.
func (s *setup) addController(kind *render.Kind) error {
	r := &Reconciler{
		Client:        s.mgr.GetClient(),
		GVK:           kind.GVK,
		Templates:     s.templates,
		Applier:       s.applier,
		Recorder:      s.mgr.GetEventRecorder("cuerator"),
		Timeout:       s.opts.ReconcileTimeout,
		ConflictRetry: s.opts.ConflictRetry,
	}
	resync := make(chan event.GenericEvent)
	cr := &unstructured.Unstructured{}
	cr.SetGroupVersionKind(kind.GVK)
	b := ctrl.NewControllerManagedBy(s.mgr).
		Named(strings.ToLower(kind.GVK.Kind+"."+kind.GVK.Group)).
		// Status writes bump no generation: reconciling on them would loop.
		For(cr, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(source.Channel(resync, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: s.opts.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](s.opts.BackoffMin, s.opts.BackoffMax),
		})
	for _, gvk := range kind.ChildKinds {
		// A watch on a kind the cluster does not serve would fail the
		// manager; such children are reported when a CR produces them.
		if _, err := s.mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			s.mgr.GetLogger().Info("not watching a child kind the cluster does not serve", "kind", kind.GVK.Kind, "child", gvk.String(), "reason", err.Error())
			continue
		}
		child := &unstructured.Unstructured{}
		child.SetGroupVersionKind(gvk)
		b = b.Watches(child, handler.EnqueueRequestsFromMapFunc(ownerOf(kind)))
	}
	if err := b.Complete(r); err != nil {
		return fmt.Errorf("set up controller for %s: %w", kind.GVK, err)
	}
	s.resyncs[kind.GVK] = resync
	return nil
}

// ownerOf maps a child to its CR by owner labels rather than ownerReference,
// so that children kept without one (Orphan, Retain) are watched too.
func ownerOf(kind *render.Kind) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		if owner, ok := kind.OwnerOf(obj); ok {
			return []reconcile.Request{{NamespacedName: owner}}
		}
		return nil
	}
}
