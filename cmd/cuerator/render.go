package main

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
)

func renderCmd(templates *string) *cobra.Command {
	var file, format string
	var kube kubectlFlags
	cmd := &cobra.Command{
		Use:   "render -f FILE|-",
		Short: "Render CRs to the manifests of their children, offline",
		Long: `render prints the children each CR of FILE becomes, as the operator would
apply them, without a cluster. CRs that name no namespace get the one of
--namespace, else of the kubeconfig's current context, else "default", as
kubectl gives them.`,
		Example: `  # Show what a Memcached CR becomes
  cuerator render -f examples/memcached-sample.yaml

  # From a pipe, into another namespace
  cat cr.yaml | cuerator render -f - -n prod -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			namespace, err := kube.namespace()
			if err != nil {
				return err
			}
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			crs, err := readFile(file)
			if err != nil {
				return err
			}
			var children []*unstructured.Unstructured
			notes := uncheckedNotes{}
			for i, cr := range crs {
				if cr.GetNamespace() == "" {
					cr.SetNamespace(namespace)
				}
				r, err := lib.RenderCR(cr)
				if err == nil {
					err = r.InputsNeeded()
				}
				if err != nil {
					return fmt.Errorf("%s: document %d (%s %s): %w", file, i, cr.GetKind(), cr.GetName(), err)
				}
				children = append(children, r.Objects...)
				notes.add(cmd.ErrOrStderr(), r)
			}
			return writeObjects(cmd.OutOrStdout(), format, children)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of CRs (multi-document YAML), or - for standard input")
	kube = addNamespaceFlags(cmd)
	addOutputFlag(cmd, &format)
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

// uncheckedNotes says once per kind which children no built-in schema
// checked offline (a CRD's kinds): the API server checks them at apply.
type uncheckedNotes map[string]bool

func (n uncheckedNotes) add(w io.Writer, r *render.Rendered) {
	for i, key := range r.Keys {
		if !slices.Contains(r.Unchecked, key) {
			continue
		}
		gvk := r.Objects[i].GroupVersionKind()
		if n[gvk.String()] {
			continue
		}
		n[gvk.String()] = true
		fmt.Fprintf(w, "note: %s %s children (objects.%s) are not checked offline: a CRD defines the kind, and no built-in schema has it\n", gvk.Kind, gvk.GroupVersion(), key)
	}
}
