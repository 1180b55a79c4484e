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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/preview"
)

func diffCmd(templates *string) *cobra.Command {
	var file, color string
	var timeout time.Duration
	var kube kubectlFlags
	cmd := &cobra.Command{
		Use:   "diff -f FILE|-",
		Short: "Show what applying CRs would change among their children in the cluster",
		Long: `diff renders each CR of FILE as the operator would, against the cluster of
the kubeconfig (as kubectl finds it: --kubeconfig, KUBECONFIG, ~/.kube/config;
--context), and has the API server dry-run the apply of every child. CRs that
name no namespace get the one of --namespace, else of the current context. It lists
the children that would be created, changed (with a unified diff of the live
object and the result of the apply, with a Secret's values masked as kubectl
diff masks them), pruned or refused because someone else owns them. Nothing in
the cluster changes.

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
			namespace, err := kube.namespace()
			if err != nil {
				return err
			}
			cfg, err := kube.restConfig()
			if err != nil {
				return err
			}
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
	f.StringVar(&color, "color", "auto", "colour the diff: auto (when standard output is a terminal and NO_COLOR is unset or empty), always or never")
	f.DurationVar(&timeout, "timeout", time.Minute, "deadline for the whole comparison, API calls included")
	_ = cmd.RegisterFlagCompletionFunc("color", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	kube = addKubectlFlags(cmd, true)
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// useColor decides whether the report to out is coloured.
func useColor(mode string, out io.Writer) (bool, error) {
	f, ok := out.(*os.File)
	return colorWanted(mode, ok && term.IsTerminal(int(f.Fd())), os.Getenv("NO_COLOR"))
}

// colorWanted: always and never say it; auto colours a terminal, unless
// NO_COLOR is set and not empty (https://no-color.org).
func colorWanted(mode string, terminal bool, noColor string) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return terminal && noColor == "", nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", mode)
}
