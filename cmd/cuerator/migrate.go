package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cuerator/cuerator/convert"
)

func migrateCmd(templates *string) *cobra.Command {
	var timeout time.Duration
	var kube kubectlFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Rewrite the CRs of kinds with several versions in their storage version",
		Long: `migrate finishes a change of a kind's storage version in the cluster of the
kubeconfig. For each kind of the templates that has several versions, it
waits until the API server stores the CRD's storage version, rewrites every
CR with an empty patch (the API server stores it again, in that version;
spec, status and generation do not change), and then trims the CRD's
status.storedVersions to that version, so that a later version of the
templates may stop serving the old ones.

The operator does this itself when it installs its CRDs (run --templates);
run migrate after a rollout in which the CRDs are applied by someone else
(deploy/crds, Flux, Argo CD). The operator's conversion webhook must be
running: the API server converts each CR through it.`,
		Example: `  kubectl apply --server-side -k deploy/crds   # the CRDs of the new templates
  cuerator migrate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			cfg, err := kube.restConfig()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			found := false
			for _, k := range lib.Kinds() {
				if !k.MultiVersion() {
					continue
				}
				found = true
				m, err := convert.MigrateStorage(ctx, cfg, k.Plural+"."+k.GVK.Group)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, m)
			}
			if !found {
				fmt.Fprintln(out, "no kind of the templates has several versions: nothing to migrate")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "deadline for the whole migration")
	kube = addKubectlFlags(cmd, false)
	return cmd
}
