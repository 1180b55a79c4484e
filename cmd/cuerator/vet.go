package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cuerator/cuerator/render"
)

func vetCmd(templates *string) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "vet -f FILE...",
		Short: "Validate CR files against their kinds' schemas and templates",
		Long:  "vet checks every document of every file as the cluster would, and renders it, checking each child against the Kubernetes API's schema of its kind. It reports each invalid document with its file, document index, field path and reason (and, for a child's field, the template's file:line), and exits 1 if any is invalid.",
		Example: `  # In CI, before a merge
  cuerator vet -f examples/memcached-sample.yaml -f clusters/prod/caches.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			notes := uncheckedNotes{}
			invalid := 0
			for _, file := range files {
				crs, err := readFile(file)
				if err != nil {
					fmt.Fprintln(out, err)
					invalid++
					continue
				}
				for i, cr := range crs {
					if cr.GetNamespace() == "" {
						cr.SetNamespace("default")
					}
					r, err := lib.RenderCR(cr)
					if err == nil {
						notes.add(cmd.ErrOrStderr(), r)
						continue
					}
					invalid++
					var verr *render.ValidationError
					if !errors.As(err, &verr) {
						fmt.Fprintf(out, "%s: document %d (%s %s): %v\n", file, i, cr.GetKind(), cr.GetName(), err)
						continue
					}
					for _, fe := range verr.Errs {
						fmt.Fprintf(out, "%s: document %d (%s %s): %s\n", file, i, cr.GetKind(), cr.GetName(), fe)
					}
				}
			}
			if invalid > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file of CRs (multi-document YAML), or - for standard input; repeatable")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
