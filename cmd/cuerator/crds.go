package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/cuerator/cuerator/engine"
)

func crdsCmd(templates *string) *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "crds",
		Short: "Print the CustomResourceDefinitions generated from the templates",
		Example: `  cuerator crds | kubectl apply --server-side -f -

  # One file per CRD, as 'make generate' writes deploy/crds/
  cuerator crds --output-dir deploy/crds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			crds, err := lib.CRDs()
			if err != nil {
				return err
			}
			if outDir == "" {
				b, err := engine.MarshalCRDYAML(crds)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return writeCRDFiles(outDir, crds)
		},
	}
	cmd.Flags().StringVar(&outDir, "output-dir", "", "write one <group>_<plural>.yaml per CRD into this directory instead of standard output")
	return cmd
}

func writeCRDFiles(dir string, crds []*apiextensionsv1.CustomResourceDefinition) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, crd := range crds {
		b, err := engine.MarshalCRDYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s_%s.yaml", crd.Spec.Group, crd.Spec.Names.Plural)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
