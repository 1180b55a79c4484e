package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/generate/olm"
	"github.com/cuerator/cuerator/render"
)

type bundleOptions struct {
	deployDir, examplesDir, outputDir string
	source                            olm.BundleSource
}

func bundleCmd(templates *string) *cobra.Command {
	opts := bundleOptions{}
	cmd := &cobra.Command{
		Use:   "bundle --version VERSION --image IMAGE",
		Short: "Write the OLM bundle of the operator",
		Long: `bundle writes an Operator Lifecycle Manager bundle (registry+v1) into
--output-dir: manifests/ holds a ClusterServiceVersion and the CRDs generated
from the templates, metadata/ the bundle annotations. The CSV installs the
manager Deployment of deploy/manager with the permissions that deploy/rbac binds
to its service account, and owns every CRD. The bundle is validated after it
is written.`,
		Example: `  # What 'make bundle' runs
  cuerator bundle --version 0.1.0 --image registry.example/cuerator:0.1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			return writeBundle(lib, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.source.Version, "version", "", "the operator's semantic version, e.g. 0.1.0")
	f.StringVar(&opts.source.Image, "image", "", "the operator image the bundle installs")
	f.StringVar(&opts.source.Package, "package", "cuerator", "OLM package name")
	f.StringVar(&opts.source.Channel, "channel", "alpha", "the bundle's channel, also its default")
	f.StringVar(&opts.deployDir, "deploy-dir", "deploy", "directory with rbac/ and manager/, the operator's install manifests")
	f.StringVar(&opts.examplesDir, "examples-dir", "examples", "directory of sample CRs (*.yaml) for alm-examples")
	f.StringVar(&opts.outputDir, "output-dir", "bundle", "where to write manifests/ and metadata/")
	_ = cmd.MarkFlagRequired("version")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}

func writeBundle(lib *render.Library, opts bundleOptions) error {
	// The ClusterRole comes from `make generate`, the Deployment from
	// deploy/manager: without them there is nothing to install.
	for _, required := range []string{filepath.Join(opts.deployDir, "rbac", "role.yaml"), filepath.Join(opts.deployDir, "manager")} {
		if _, err := os.Stat(required); err != nil {
			return fmt.Errorf("the bundle installs what %s/rbac and %s/manager hold: %w", opts.deployDir, opts.deployDir, err)
		}
	}
	var err error
	opts.source.Manifests, err = readManifestFiles(filepath.Join(opts.deployDir, "rbac"), filepath.Join(opts.deployDir, "manager"))
	if err != nil {
		return err
	}
	opts.source.MinKubeVersion = minKubeVersion
	opts.source.Examples, err = readManifestFiles(opts.examplesDir)
	if err != nil {
		return err
	}
	bundle, err := olm.NewBundle(lib, opts.source)
	if err != nil {
		return err
	}
	if err := bundle.Write(opts.outputDir); err != nil {
		return err
	}
	if err := olm.ValidateBundle(opts.outputDir); err != nil {
		return fmt.Errorf("the bundle written to %s is invalid:\n%w", opts.outputDir, err)
	}
	return nil
}

// readManifestFiles reads the objects of every *.yaml file in dirs, in file
// name order, leaving out kustomize's kustomization.yaml.
func readManifestFiles(dirs ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml file", dir)
		}
		sort.Strings(files)
		for _, file := range files {
			if filepath.Base(file) == "kustomization.yaml" {
				continue
			}
			f, err := os.Open(file)
			if err != nil {
				return nil, err
			}
			read, err := render.ReadManifests(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			objs = append(objs, read...)
		}
	}
	return objs, nil
}
