package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// ManagerOptions are the process-level settings of the operator.
type ManagerOptions struct {
	Options
	MetricsBindAddress string
	// MetricsSecure serves metrics over HTTPS (with a self-signed
	// certificate) to callers the API server authenticates and authorizes
	// for GET /metrics.
	MetricsSecure          bool
	HealthProbeBindAddress string
	// PprofBindAddress, unless "" or "0", serves Go's /debug/pprof there:
	// how a memory or CPU figure at scale is explained.
	PprofBindAddress string
	LeaderElection   bool
	LeaderElectionID string
	LeaderElectionNS string
	// WatchLabelSelector, unless nil or empty, restricts the CRs this process
	// caches and so reconciles: processes with disjoint selectors shard the CRs.
	WatchLabelSelector labels.Selector
	// NewClient, unless nil, builds the manager's client (controller-runtime's
	// hook; tests wrap the client to inject API failures).
	NewClient client.NewClientFunc
	// Conversion configures the conversion webhook (conversion.go).
	Conversion ConversionOptions
	// SyncPeriod, unless zero, is how often the informers resend every
	// object, which reconciles every CR again (controller-runtime's default
	// is 10 hours).
	SyncPeriod time.Duration
}

// readyzSyncWait bounds how long /readyz waits for the caches, so that a
// probe gets a prompt "not ready" rather than a hung request.
const readyzSyncWait = time.Second

// NewManager builds a manager that serves every kind of lib, with health
// and readiness probes and Prometheus metrics.
func NewManager(cfg *rest.Config, lib *render.Library, opts ManagerOptions) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Cache:  cacheOptions(lib, opts),
		// Children are unstructured; reading them from the informers is what
		// makes an unchanged reconcile free of API requests.
		Client:                  client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		NewClient:               opts.NewClient,
		Metrics:                 metricsOptions(opts),
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		PprofBindAddress:        opts.PprofBindAddress,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNS,
		// Release the lease on a clean stop so a standby takes over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	children, err := childCluster(cfg, mgr, opts)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(children); err != nil {
		return nil, err
	}
	conv, err := setupConversion(mgr, lib, opts)
	if err != nil {
		return nil, err
	}
	if err := Setup(mgr, children, lib, opts.Options); err != nil {
		return nil, err
	}
	if err := conv.crdsInstalled(); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the informers started so far have synced. A standby of
	// leader election starts its controllers, and so their informers, only
	// when it leads: until then it is ready as a standby.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), readyzSyncWait)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) || !children.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// metricsOptions serves /metrics in plain HTTP, or with MetricsSecure over
// HTTPS to callers that the API server authenticates (TokenReview) and
// authorizes (SubjectAccessReview): the operator's identity needs both.
func metricsOptions(opts ManagerOptions) metricsserver.Options {
	mo := metricsserver.Options{BindAddress: opts.MetricsBindAddress}
	if opts.MetricsSecure {
		mo.SecureServing = true
		mo.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return mo
}

// cacheOptions scopes the manager's informers, which hold the CRs and the
// metadata of the pods templates observe: to one namespace, and for the CRs
// of every kind to the label selector, so that CRs of other shards are not
// even cached. Children live in a cache of their own (childCluster).
func cacheOptions(lib *render.Library, opts ManagerOptions) cache.Options {
	// managedFields are most of an object's size and nothing reads them.
	co := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if opts.SyncPeriod > 0 {
		co.SyncPeriod = &opts.SyncPeriod
	}
	if opts.WatchNamespace != "" {
		co.DefaultNamespaces = map[string]cache.Config{opts.WatchNamespace: {}}
	}
	co.ByObject = map[client.Object]cache.ByObject{}
	if opts.WatchLabelSelector != nil && !opts.WatchLabelSelector.Empty() {
		for _, kind := range lib.Kinds() {
			cr := &unstructured.Unstructured{}
			cr.SetGroupVersionKind(kind.GVK)
			co.ByObject[cr] = cache.ByObject{Label: opts.WatchLabelSelector}
		}
	}
	// Pods are foreign objects: a status projection needs their name and
	// labels alone.
	pods := &metav1.PartialObjectMetadata{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	co.ByObject[pods] = cache.ByObject{Transform: keepPodIdentity}
	return co
}

// childCluster is where children are read from: a cache of the objects
// that carry cuerator's owner label, filtered by the API server, so that
// the cluster's other Secrets, ConfigMaps, Deployments (Helm's release
// Secrets, other operators' objects) never reach this process. Objects
// without the label are read from the API server when a child's name is
// found taken, which is what the adoption guard needs of them.
func childCluster(cfg *rest.Config, mgr ctrl.Manager, opts ManagerOptions) (cluster.Cluster, error) {
	owned, err := labels.NewRequirement(child.LabelOwnerKind, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	co := cache.Options{
		DefaultLabelSelector: labels.NewSelector().Add(*owned),
		DefaultTransform:     keepManagerNames,
	}
	if opts.SyncPeriod > 0 {
		co.SyncPeriod = &opts.SyncPeriod
	}
	if opts.WatchNamespace != "" {
		co.DefaultNamespaces = map[string]cache.Config{opts.WatchNamespace: {}}
	}
	c, err := cluster.New(apply.CacheConfig(cfg), func(o *cluster.Options) {
		o.Scheme = mgr.GetScheme()
		o.HTTPClient = mgr.GetHTTPClient()
		o.MapperProvider = func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mgr.GetRESTMapper(), nil }
		o.Cache = co
		o.Client = client.Options{Cache: &client.CacheOptions{Unstructured: true}}
		newClient := opts.NewClient
		if newClient == nil {
			newClient = client.New
		}
		o.NewClient = func(cfg *rest.Config, co client.Options) (client.Client, error) {
			// The engine reads unstructured children; the cache holds the
			// kinds the scheme knows typed, at half the memory.
			if co.Cache != nil && co.Cache.Reader != nil {
				co.Cache.Reader = apply.TypedReads(co.Cache.Reader, mgr.GetScheme())
			}
			return newClient(cfg, co)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("create the children's cache: %w", err)
	}
	return c, nil
}

// keepManagerNames drops what managedFields record of each field and keeps
// who wrote the object: the adoption guard's evidence that cuerator wrote a
// child, and the names a refusal gives, without the bulk of the object.
func keepManagerNames(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil || obj.GetManagedFields() == nil {
		return in, nil
	}
	var names []metav1.ManagedFieldsEntry
	seen := map[string]bool{}
	for _, mf := range obj.GetManagedFields() {
		if !seen[mf.Manager] {
			seen[mf.Manager] = true
			names = append(names, metav1.ManagedFieldsEntry{Manager: mf.Manager, Operation: mf.Operation})
		}
	}
	obj.SetManagedFields(names)
	return in, nil
}

// keepPodIdentity keeps of a pod's metadata what observing it needs.
func keepPodIdentity(in any) (any, error) {
	if pod, ok := in.(*metav1.PartialObjectMetadata); ok {
		pod.ObjectMeta = metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Labels: pod.Labels, DeletionTimestamp: pod.DeletionTimestamp,
		}
	}
	return in, nil
}
