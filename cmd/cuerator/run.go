package main

import (
	"flag"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/cuerator/cuerator/controllers"
)

func runCmd(templates *string) *cobra.Command {
	opts := controllers.ManagerOptions{}
	zapOpts := zap.Options{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the operator against the cluster in KUBECONFIG (or in-cluster)",
		Example: `  # Run against the local cluster of 'make cluster-up'
  KUBECONFIG=.cluster/kubeconfig cuerator run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			cfg, err := ctrl.GetConfig()
			if err != nil {
				return err
			}
			mgr, err := controllers.NewManager(cfg, lib, opts)
			if err != nil {
				return err
			}
			return mgr.Start(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "CRs of one kind reconciled at once")
	f.DurationVar(&opts.ReconcileTimeout, "reconcile-timeout", 30*time.Second, "deadline of one reconcile, API calls included")
	f.DurationVar(&opts.BackoffMin, "backoff-min", time.Second, "first retry delay after a failed reconcile")
	f.DurationVar(&opts.BackoffMax, "backoff-max", 5*time.Minute, "longest retry delay after repeated failures")
	f.DurationVar(&opts.ConflictRetry, "conflict-retry", 30*time.Second, "how often a CR blocked by a child it does not own looks again for the adopt annotation")
	f.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	f.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader so that only one replica reconciles")
	f.StringVar(&opts.LeaderElectionID, "leader-election-id", "cuerator.cuerator.dev", "name of the leader election lease")
	f.StringVar(&opts.LeaderElectionNS, "leader-election-namespace", "", "namespace of the lease (default: the pod's namespace)")
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	f.AddGoFlagSet(goFlags)
	return cmd
}
