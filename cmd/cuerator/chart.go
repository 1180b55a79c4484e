package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cuerator/cuerator/generate/helm"
	"github.com/cuerator/cuerator/render"
)

// minKubeVersion is the Kubernetes release cuerator is built against
// (k8s.io v0.37) and tested on: the chart's kubeVersion and the OLM
// bundle's minKubeVersion.
const minKubeVersion = "1.37.0"

type chartOptions struct {
	deployDir, outputDir, version string
}

func chartCmd(templates *string) *cobra.Command {
	opts := chartOptions{}
	cmd := &cobra.Command{
		Use:   "chart",
		Short: "Write the operator's Helm chart",
		Long: `chart writes the Helm chart that installs the operator as deploy/default does:
the CRDs generated from the templates (installed and upgraded with the release,
kept when it is uninstalled), the ServiceAccount and RBAC of deploy/rbac (its
ClusterRole generated from the templates) and the manager Deployment and
metrics Service of deploy/manager, named after the release and in its
namespace. Values set the image, replicas, resources and scheduling.`,
		Example: `  # What 'make generate' writes
  cuerator chart --output-dir charts/cuerator

  helm install cuerator charts/cuerator -n cuerator-system --create-namespace \
    --set image.repository=registry.example/cuerator --set image.tag=v0.1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			return writeChart(lib, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.deployDir, "deploy-dir", "deploy", "directory with rbac/ and manager/, the operator's install manifests")
	f.StringVar(&opts.outputDir, "output-dir", "charts/cuerator", "where to write the chart; its templates/ is replaced")
	f.StringVar(&opts.version, "version", "0.1.0", "the chart's version and appVersion (helm package --version and --app-version change them at release)")
	return cmd
}

func writeChart(lib *render.Library, opts chartOptions) error {
	manifests, err := readManifestFiles(filepath.Join(opts.deployDir, "rbac"), filepath.Join(opts.deployDir, "manager"))
	if err != nil {
		return fmt.Errorf("the chart installs what %s/rbac and %s/manager hold: %w", opts.deployDir, opts.deployDir, err)
	}
	files, err := helm.Chart(lib, helm.Source{
		Version: opts.version, KubeVersion: minKubeVersion, Manifests: manifests,
		Namespace: "cuerator-system", Name: "cuerator",
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(opts.outputDir, "templates")); err != nil {
		return err
	}
	for name, content := range files {
		path := filepath.Join(opts.outputDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}
