package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cuerator/cuerator/generate/argocd"
)

func argoCDHealthCmd(templates *string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "argocd-health",
		Short: "Print the argocd-cm patch that teaches Argo CD the health of every kind",
		Long: `argocd-health prints a patch of Argo CD's argocd-cm ConfigMap with a Lua
health check per kind (resource.customizations.health.<group>_<Kind>). Argo CD
then shows a CR as Progressing until the operator has observed its generation
and its children are healthy, Degraded when it is Stalled, Healthy when Ready.`,
		Example: `  cuerator argocd-health | kubectl -n argocd patch configmap argocd-cm --patch-file /dev/stdin

  # What 'make argocd-health' writes
  cuerator argocd-health --output-file deploy/argocd/argocd-cm-patch.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			patch, err := argocd.HealthPatch(lib)
			if err != nil {
				return err
			}
			if output != "" {
				return os.WriteFile(output, patch, 0o644)
			}
			_, err = cmd.OutOrStdout().Write(patch)
			return err
		},
	}
	cmd.Flags().StringVar(&output, "output-file", "", "write the patch to this file instead of standard output")
	return cmd
}
