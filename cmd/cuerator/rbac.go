package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cuerator/cuerator/generate/rbac"
)

func rbacCmd(templates *string) *cobra.Command {
	var namespace, format string
	var installsCRDs bool
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "Print the least-privilege RBAC the operator needs for the templates",
		Long: `rbac prints the ClusterRole ` + "`cuerator-manager`" + ` that the operator needs to serve
the templates' kinds (their CRs and status, every kind in their childKinds,
pods for templates that observe them, events; never a wildcard) and the Role
` + "`cuerator-leader-election`" + ` it needs in its own namespace. With --install-crds, also the
ClusterRole ` + "`cuerator-crd-installer`" + ` that an operator run with --templates needs:
it installs its kinds' CRDs (get, create and patch of those CRDs by name; list
and watch of CRDs, to read back a kind added while it runs).

Child kinds are mapped to resources offline: by the plural of the template
kind, else by Kubernetes' English plural rules, which fit every built-in kind
and conventional CRDs. A child CRD with an irregular plural needs a rule of
its own.`,
		Example: `  cuerator rbac | kubectl apply -f -

  # For your own template module, as 'make generate' writes deploy/rbac/role.yaml
  cuerator rbac --templates ./kinds --namespace platform-system > role.yaml

  # For 'cuerator run --templates ./kinds', which installs the CRDs itself
  cuerator rbac --templates ./kinds --install-crds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
				return fmt.Errorf("--namespace %q: %s", namespace, strings.Join(errs, "; "))
			}
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			b, err := rbac.Manifests(lib, namespace, installsCRDs)
			if err != nil {
				return err
			}
			return writeManifests(cmd.OutOrStdout(), format, b)
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", "cuerator-system", "namespace the operator runs in, where its leader-election Role goes")
	addOutputFlag(cmd, &format)
	cmd.Flags().BoolVar(&installsCRDs, "install-crds", false, "add the ClusterRole "+rbac.CRDInstallerRoleName+" that an operator run with --templates needs to install its kinds' CRDs")
	return cmd
}
