package controllers

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
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
	// Identity names this process in the statuses it writes; empty means
	// the host's name and a random suffix.
	Identity string
	// KindRetry is how often a kind that could not start is tried again
	// (default 30 s).
	KindRetry time.Duration
	// WatchNamespace restricts every watch to one namespace; empty watches all.
	WatchNamespace string
	// DeletionTimeout bounds how long a CR deleted with deleteInOrder waits
	// for a stage of its children before the garbage collector takes the
	// rest (default 5 minutes).
	DeletionTimeout time.Duration
}

// Setup registers one controller per kind of lib with mgr; children are read
// from the cache of children. Kinds come from the template library; none is
// coded here.
func Setup(mgr ctrl.Manager, children cluster.Cluster, lib *render.Library, opts Options) error {
	if opts.Identity == "" {
		opts.Identity = processIdentity()
	}
	s := &setup{
		mgr:       mgr,
		children:  children,
		opts:      opts,
		applier:   apply.NewApplier(children.GetClient(), mgr.GetAPIReader()),
		templates: &templates{lib: lib},
		resyncs:   map[schema.GroupVersionKind]chan event.GenericEvent{},
		indexed:   map[schema.GroupVersionKind]bool{},
	}
	if slices.ContainsFunc(lib.Kinds(), (*render.Kind).ObservesPods) {
		// Only then may the operator read pods (its generated RBAC).
		indexCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := indexPodLabels(indexCtx, mgr.GetFieldIndexer()); err != nil {
			return fmt.Errorf("index pods by label: %w", err)
		}
		s.podsIndexed = true
	}
	var direct client.Client
	if opts.TemplatesDir != "" {
		// CRDs go through a direct client: the cache does not run yet, and
		// it would hold every CRD of the cluster.
		var err error
		if direct, err = client.New(mgr.GetConfig(), client.Options{}); err != nil {
			return err
		}
	}
	if opts.KindRetry <= 0 {
		opts.KindRetry = 30 * time.Second
	}
	starter := &kindStarter{
		retry: opts.KindRetry,
		log:   mgr.GetLogger().WithName("kinds"),
		start: func(ctx context.Context, kind *render.Kind) error {
			if direct != nil {
				if err := installCRD(ctx, direct, kind); err != nil {
					return fmt.Errorf("install its CRD: %w", err)
				}
			}
			if err := servable(ctx, mgr.GetAPIReader(), kind.GVK, opts.WatchNamespace); err != nil {
				return err
			}
			return s.addController(kind)
		},
	}
	for _, kind := range lib.Kinds() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		starter.add(ctx, kind)
		cancel()
	}
	if err := mgr.Add(starter); err != nil {
		return err
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
		addKind:   starter.add,
		resync:    func(ctx context.Context) { resyncAll(ctx, mgr.GetClient(), s.resyncs) },
		log:       log.Info,
		logErr:    log.Error,
	})
}

type setup struct {
	mgr       ctrl.Manager
	children  cluster.Cluster
	opts      Options
	applier   *apply.Applier
	templates *templates
	// resyncs feed each kind's controller every CR again after a template
	// change.
	resyncs map[schema.GroupVersionKind]chan event.GenericEvent
	// podsIndexed: pods are indexed by label (podLabelIndex), which the
	// kinds that observe pods at start need.
	podsIndexed bool
	// indexed are the child kinds indexed by owner.
	indexMu sync.Mutex
	indexed map[schema.GroupVersionKind]bool
}

// addController starts reconciling one kind: its CRs, and every child kind
// its template lists.
func (s *setup) addController(kind *render.Kind) error {
	r := &Reconciler{
		Client:          s.mgr.GetClient(),
		Reader:          s.mgr.GetAPIReader(),
		GVK:             kind.GVK,
		Templates:       s.templates,
		Applier:         s.applier,
		Recorder:        s.mgr.GetEventRecorder("cuerator"),
		Timeout:         s.opts.ReconcileTimeout,
		ConflictRetry:   s.opts.ConflictRetry,
		DeletionTimeout: cmp.Or(s.opts.DeletionTimeout, defaultDeletionTimeout),
		Identity:        s.opts.Identity,
	}
	resync := make(chan event.GenericEvent)
	cr := &unstructured.Unstructured{}
	cr.SetGroupVersionKind(kind.GVK)
	b := ctrl.NewControllerManagedBy(s.mgr).
		Named(strings.ToLower(kind.GVK.Kind+"."+kind.GVK.Group)).
		// Status writes bump no generation: reconciling on them would loop.
		// A resync (an update that is no change) reconciles each CR once.
		For(cr, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, resyncOnly, claimedBy(s.opts.Identity, &r.contests)))).
		WatchesRawSource(source.Channel(resync, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: s.opts.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](s.opts.BackoffMin, s.opts.BackoffMax),
		})
	c, err := b.Build(r)
	if err != nil {
		return fmt.Errorf("set up controller for %s: %w", kind.GVK, err)
	}
	r.Children = &childWatches{
		mapper: s.mgr.GetRESTMapper(),
		start: func(gvk schema.GroupVersionKind) error {
			if err := s.indexOwner(gvk); err != nil {
				return err
			}
			obj := apply.CachedObject(s.children.GetScheme(), gvk)
			return c.Watch(source.Kind[client.Object](s.children.GetCache(), obj, handler.EnqueueRequestsFromMapFunc(ownerOf(kind)), changedOnly))
		},
	}
	for _, gvk := range kind.ChildKinds {
		// A watch on a kind the cluster does not serve would fail the
		// manager; such a kind is watched once a CR produces a child of it
		// and the cluster serves it (its CRD installed later).
		if err := r.Children.add(gvk); err != nil {
			if !meta.IsNoMatchError(err) {
				return err
			}
			s.mgr.GetLogger().Info("not watching a child kind the cluster does not serve, yet", "kind", kind.GVK.Kind, "child", gvk.String(), "reason", err.Error())
		}
	}
	for _, gvk := range kind.InputKinds {
		// Metadata only: an input's news is that it changed; what it holds
		// is read when a CR reads it, and the kind's other objects (every
		// Secret of the cluster) are never held in memory.
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(gvk)
		if _, err := s.mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			s.mgr.GetLogger().Info("not watching an input kind the cluster does not serve", "kind", kind.GVK.Kind, "input", gvk.String(), "reason", err.Error())
			continue
		}
		if err := c.Watch(source.Kind[client.Object](s.mgr.GetCache(), obj, handler.EnqueueRequestsFromMapFunc(r.inputChanged(gvk)))); err != nil {
			return fmt.Errorf("watch input kind %s of %s: %w", gvk, kind.GVK, err)
		}
	}
	s.resyncs[kind.GVK] = resync
	return nil
}

// indexOwner indexes the children of gvk by owner, once per kind: several
// kinds of CR may produce the same child kind.
func (s *setup) indexOwner(gvk schema.GroupVersionKind) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexed[gvk] {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := apply.IndexOwner(ctx, s.children.GetFieldIndexer(), apply.CachedObject(s.children.GetScheme(), gvk)); err != nil {
		return fmt.Errorf("index %s children by owner: %w", gvk.Kind, err)
	}
	s.indexed[gvk] = true
	return nil
}

// resyncOnly passes the updates that change nothing: the periodic resync.
var resyncOnly = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion()
	},
}

// claimedBy passes the updates in which another operator process than me
// wrote the status, unless a contest on the CR is known already: this one
// answers (Contested) before the other, seeing nobody, starts pruning, and
// two contenders do not answer each other's every write.
func claimedBy(me string, known *contests) predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, after := statusWriter(e.ObjectOld), statusWriter(e.ObjectNew)
			return after != before && after != "" && after != me && !known.known(client.ObjectKeyFromObject(e.ObjectNew))
		},
	}
}

// statusWriter is status.reconciler.id of a CR.
func statusWriter(obj client.Object) string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return ""
	}
	id, _, _ := unstructured.NestedString(u.Object, "status", "reconciler", "id")
	return id
}

// changedOnly drops a child's resync: its CR is resynced on its own.
var changedOnly = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
	},
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

// processIdentity is the host's name (a pod's) and a random suffix: two
// processes on one host are two identities.
func processIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "cuerator"
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return host + "-" + hex.EncodeToString(suffix)
}
