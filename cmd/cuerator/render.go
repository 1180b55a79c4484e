package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

func renderCmd(templates *string) *cobra.Command {
	var file, namespace string
	cmd := &cobra.Command{
		Use:   "render -f FILE|-",
		Short: "Render CRs to the manifests of their children, offline",
		Example: `  # Show what a Memcached CR becomes
  cuerator render -f examples/memcached-sample.yaml

  # From a pipe, into another namespace
  cat cr.yaml | cuerator render -f - -n prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			crs, err := readFile(file)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, cr := range crs {
				if cr.GetNamespace() == "" {
					cr.SetNamespace(namespace)
				}
				r, err := lib.RenderCR(cr)
				if err != nil {
					return fmt.Errorf("%s: document %d (%s %s): %w", file, i, cr.GetKind(), cr.GetName(), err)
				}
				if err := writeYAML(out, r.Objects); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of CRs (multi-document YAML), or - for standard input")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of CRs that name none")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func readFile(name string) ([]*unstructured.Unstructured, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	objs, err := render.ReadManifests(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return objs, nil
}

func writeYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}
