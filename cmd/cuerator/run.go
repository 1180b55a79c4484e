package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/render"
)

func runCmd(templates *string) *cobra.Command {
	opts := controllers.ManagerOptions{}
	zapOpts := zap.Options{}
	var selector string
	var qps float32
	var burst int
	var kube kubectlFlags
	var renderMemory string
	var memoryRatio float64
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the operator against the cluster of the kubeconfig (or in-cluster)",
		Long: `run starts the operator. It finds its cluster as kubectl does (--kubeconfig,
KUBECONFIG, ~/.kube/config, --context), and in a pod, with none of them, uses
the pod's service account. Which namespaces it reconciles and where its Lease
lives have flags of their own (--watch-namespace, --leader-election-namespace),
so it takes no -n.`,
		Example: `  # Run against the local cluster of 'make cluster-up'
  cuerator run --kubeconfig .cluster/kubeconfig`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("metrics-secure") {
				opts.MetricsSecure = !isLoopback(opts.MetricsBindAddress)
			}
			if err := completeRunOptions(&opts, selector); err != nil {
				return err
			}
			if !cmd.Flags().Changed("leader-election-id") {
				opts.LeaderElectionID = shardLease(opts.WatchNamespace, opts.WatchLabelSelector.String())
			}
			if qps <= 0 || burst < 1 {
				return fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d: both must be positive", qps, burst)
			}
			if err := setRenderBudget(renderMemory); err != nil {
				return err
			}
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			soft, err := setMemoryLimit(memoryRatio, cgroupMemoryFiles)
			if err != nil {
				return err
			}
			if soft > 0 {
				ctrl.Log.Info("Go's soft memory limit set from the container's", "bytes", soft, "ratio", memoryRatio)
			}
			lib, err := loadOperatorLibrary(*templates)
			if err != nil {
				return err
			}
			opts.TemplatesDir = *templates
			cfg, err := kube.restConfig()
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = qps, burst
			mgr, err := controllers.NewManager(cfg, lib, opts)
			if err != nil {
				return err
			}
			return mgr.Start(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.TemplatesPoll, "templates-poll-interval", 5*time.Second, "how often --templates is checked for changes, which apply without a restart")
	f.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "CRs of one kind reconciled at once")
	f.DurationVar(&opts.ReconcileTimeout, "reconcile-timeout", 30*time.Second, "deadline of one reconcile, API calls included")
	f.DurationVar(&opts.BackoffMin, "backoff-min", time.Second, "first retry delay after a failed reconcile")
	f.DurationVar(&opts.BackoffMax, "backoff-max", 5*time.Minute, "longest retry delay after repeated failures")
	f.DurationVar(&opts.ConflictRetry, "conflict-retry", 30*time.Second, "how often a CR blocked by a child it does not own looks again for the adopt annotation")
	f.DurationVar(&opts.KindRetry, "kind-retry", 30*time.Second, "how often a kind that cannot start (its CRD missing or refused, its CRs not listable) is tried again, while the other kinds serve")
	f.DurationVar(&opts.DeletionTimeout, "deletion-timeout", 5*time.Minute, "how long a CR whose template deletes its children in order (deleteInOrder) waits for each stage before the garbage collector takes the rest")
	f.DurationVar(&opts.SyncPeriod, "sync-period", 10*time.Hour, "how often every CR is reconciled again even when nothing changed")
	f.Float32Var(&qps, "kube-api-qps", 50, "requests per second to the API server, sustained (client-side limit)")
	f.IntVar(&burst, "kube-api-burst", 300, "requests to the API server allowed in a burst above --kube-api-qps")
	f.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8443", "address of the Prometheus metrics endpoint; 0 turns it off")
	f.BoolVar(&opts.MetricsSecure, "metrics-secure", true, "serve metrics over HTTPS (self-signed) to callers the API server authenticates and authorizes for GET /metrics; unless set, plain HTTP when --metrics-bind-address is a loopback address")
	f.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.StringVar(&opts.PprofBindAddress, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles; 0 turns it off")
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader so that only one replica reconciles")
	f.StringVar(&opts.LeaderElectionID, "leader-election-id", defaultLease, "name of the leader election lease (default: "+defaultLease+", or one per shard that --watch-namespace and --watch-label-selector make)")
	f.StringVar(&opts.LeaderElectionNS, "leader-election-namespace", "", "namespace of the lease (default: the pod's namespace; required outside a cluster)")
	f.StringVar(&opts.Conversion.BindAddress, "webhook-bind-address", ":9443", "address of the conversion webhook, served when a kind has several versions")
	f.StringVar(&opts.Conversion.CertDir, "webhook-cert-dir", "", "directory of the webhook's tls.crt and tls.key (and ca.crt), reloaded when they change, e.g. a Secret cert-manager renews")
	f.StringVar(&opts.Conversion.CertSecret, "webhook-cert-secret", "", "Secret (namespace/name) in which the operator keeps the webhook's CA and certificate for the DNS names of --conversion-webhook-service, shared by its replicas and renewed, the CA set in the CRDs' caBundle; with neither this nor --webhook-cert-dir, a self-signed certificate made at start")
	f.StringVar(&opts.Conversion.URL, "conversion-webhook-url", "", "with --templates, the URL at which the API server reaches the conversion webhook (e.g. https://127.0.0.1:9443/convert), set in the CRDs of kinds with several versions")
	f.StringVar(&opts.Conversion.Service, "conversion-webhook-service", "", "the Service in front of the conversion webhook (namespace/name[:port]): with --templates, set in the CRDs instead of --conversion-webhook-url; the names --webhook-cert-secret's certificate is for")
	f.StringVar(&opts.WatchNamespace, "watch-namespace", "", "reconcile the CRs of this namespace only (default: all namespaces)")
	f.StringVar(&selector, "watch-label-selector", "", "reconcile only the CRs that match this label selector, e.g. shard=a; processes with disjoint selectors share the CRs out")
	f.DurationVar(&render.DefaultBudget.Time, "render-timeout", render.DefaultBudget.Time, "how long one render (or status projection) of a CR may evaluate; a CR over it is Stalled, naming the budget")
	f.StringVar(&renderMemory, "render-memory", resource.NewQuantity(render.DefaultBudget.Memory, resource.BinarySI).String(), "heap one render worker may use; a CR whose render needs more is Stalled, naming the budget")
	f.Float64Var(&memoryRatio, "memory-limit-ratio", 0.8, "Go's soft memory limit as a fraction of the container's memory limit (cgroup), unless GOMEMLIMIT is set; the rest is the render workers' and the binary's; 0 turns it off")
	f.IntVar(&render.DefaultWorkers, "render-workers", render.DefaultWorkers, "render worker processes, each evaluating one CR at a time (memory: up to this many times --render-memory)")
	kube = addKubectlFlags(cmd, false)
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	f.AddGoFlagSet(goFlags)
	return cmd
}

// setRenderBudget checks the --render-* flags; --render-timeout and
// --render-workers are set in place.
func setRenderBudget(memory string) error {
	if render.DefaultBudget.Time <= 0 {
		return fmt.Errorf("--render-timeout %s: must be positive", render.DefaultBudget.Time)
	}
	if render.DefaultWorkers < 1 {
		return fmt.Errorf("--render-workers %d: must be at least 1", render.DefaultWorkers)
	}
	q, err := resource.ParseQuantity(memory)
	if err != nil {
		return fmt.Errorf("--render-memory %q: %w", memory, err)
	}
	if q.Value() < 16<<20 {
		return fmt.Errorf("--render-memory %s: must be at least 16Mi (a worker's loaded templates take some)", memory)
	}
	render.DefaultBudget.Memory = q.Value()
	return nil
}

// isLoopback reports whether addr (host:port) serves this machine only:
// there, metrics need no authentication. An empty host is every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultLease is the Lease of an operator that reconciles every CR.
const defaultLease = "cuerator.cuerator.dev"

// shardLease names the Lease of the shard that namespace and selector make,
// so that the replicas of one shard elect their leader among themselves,
// not among every shard's: a digest of both, "" and "" giving defaultLease.
func shardLease(namespace, selector string) string {
	if namespace == "" && selector == "" {
		return defaultLease
	}
	sum := sha256.Sum256([]byte(namespace + "\x00" + selector))
	return "cuerator-" + hex.EncodeToString(sum[:6]) + ".cuerator.dev"
}

// podNamespaceFile is where a pod finds its namespace.
const podNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// completeRunOptions checks the flags that controller-runtime would only
// reject later, or with a message that does not name the flag.
func completeRunOptions(opts *controllers.ManagerOptions, selector string) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return fmt.Errorf("--watch-label-selector %q: %w", selector, err)
	}
	opts.WatchLabelSelector = sel
	if opts.SyncPeriod <= 0 {
		return fmt.Errorf("--sync-period %s: must be positive", opts.SyncPeriod)
	}
	if ns := opts.WatchNamespace; ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("--watch-namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if opts.LeaderElection && opts.LeaderElectionNS == "" {
		b, err := os.ReadFile(podNamespaceFile)
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("--leader-elect needs --leader-election-namespace: not running in a pod, so there is no namespace to hold the Lease")
		}
		if err != nil {
			return fmt.Errorf("--leader-elect: reading the pod's namespace for the Lease (or pass --leader-election-namespace): %w", err)
		}
		opts.LeaderElectionNS = strings.TrimSpace(string(b))
	}
	return nil
}
