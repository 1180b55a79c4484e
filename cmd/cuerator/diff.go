package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/preview"
)

func diffCmd(templates *string) *cobra.Command {
	var file, namespace, color string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "diff -f FILE|-",
		Short: "Show what applying CRs would change among their children in the cluster",
		Long: `diff renders each CR of FILE as the operator would, against the cluster in
KUBECONFIG, and has the API server dry-run the apply of every child. It lists
the children that would be created, changed (with a unified diff of the live
object and the result of the apply), pruned or refused because someone else
owns them. Nothing in the cluster changes.

Exit status, as kubectl diff: 0 when nothing would change, 1 when something
would, 2 on an error.`,
		Example: `  # Review a change to a CR before committing it
  cuerator diff -f clusters/prod/caches.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			colored, err := useColor(color, out)
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
			cfg, err := ctrl.GetConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			cfg.Timeout = timeout
			c, err := client.New(cfg, client.Options{})
			if err != nil {
				return fmt.Errorf("client for %s: %w", cfg.Host, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()

			differ := preview.NewDiffer(lib, c)
			changed := false
			var errs []error
			for i, cr := range crs {
				if cr.GetNamespace() == "" {
					cr.SetNamespace(namespace)
				}
				d, err := differ.Diff(ctx, cr)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: document %d (%s %s): %w", file, i, cr.GetKind(), cr.GetName(), err))
					continue
				}
				if err := writeDiff(out, d, colored); err != nil {
					return err
				}
				changed = changed || d.Changed()
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			if changed {
				return exitCode(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "file of CRs (multi-document YAML), or - for standard input")
	f.StringVarP(&namespace, "namespace", "n", "default", "namespace of CRs that name none")
	f.StringVar(&color, "color", "auto", "colour the diff: auto (when standard output is a terminal), always or never")
	f.DurationVar(&timeout, "timeout", time.Minute, "deadline for the whole comparison, API calls included")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func useColor(mode string, out io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		f, ok := out.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())), nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", mode)
}
