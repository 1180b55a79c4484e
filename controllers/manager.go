package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

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
	LeaderElection         bool
	LeaderElectionID       string
	LeaderElectionNS       string
	// WatchNamespace restricts every watch to one namespace; empty watches all.
	WatchNamespace string
	// WatchLabelSelector, unless nil or empty, restricts the CRs this process
	// caches and so reconciles: processes with disjoint selectors shard the CRs.
	WatchLabelSelector labels.Selector
	// NewClient, unless nil, builds the manager's client (controller-runtime's
	// hook; tests wrap the client to inject API failures).
	NewClient client.NewClientFunc
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
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNS,
		// Release the lease on a clean stop so a standby takes over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := Setup(mgr, lib, opts.Options); err != nil {
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
		if !mgr.GetCache().WaitForCacheSync(ctx) {
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

// cacheOptions scopes the informers: to one namespace, and for the CRs of
// every kind to the label selector, so that CRs of other shards are not even
// cached. Children stay unfiltered: they do not carry their CR's labels.
func cacheOptions(lib *render.Library, opts ManagerOptions) cache.Options {
	// managedFields are most of an object's size and the comparisons do not
	// need them; the engine reads them from the API server when it reports.
	co := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if opts.SyncPeriod > 0 {
		co.SyncPeriod = &opts.SyncPeriod
	}
	if opts.WatchNamespace != "" {
		co.DefaultNamespaces = map[string]cache.Config{opts.WatchNamespace: {}}
	}
	if opts.WatchLabelSelector != nil && !opts.WatchLabelSelector.Empty() {
		co.ByObject = map[client.Object]cache.ByObject{}
		for _, kind := range lib.Kinds() {
			cr := &unstructured.Unstructured{}
			cr.SetGroupVersionKind(kind.GVK)
			co.ByObject[cr] = cache.ByObject{Label: opts.WatchLabelSelector}
		}
	}
	return co
}
