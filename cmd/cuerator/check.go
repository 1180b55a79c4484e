package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/compat"
	"github.com/cuerator/cuerator/preview"
	"github.com/cuerator/cuerator/render"
)

func checkCmd(templates *string) *cobra.Command {
	var against, namespace, color string
	var preflight bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check --against DIR | --preflight",
		Short: "Find what a new version of the templates would break",
		Long: `check looks at the templates (the built-in ones, or --templates DIR) as a
new version that is about to replace the running one.

With --against DIR, an older version of the template module, it compares
the two offline and lists each breaking change by kind and field path: a
kind, version or field removed, a type changed, a new required field without
a default, a bound, enum or pattern tightened, a new validation rule (an
@immutable() field among them), a constraint the CRD cannot check.

With --preflight, it renders every CR in the cluster in KUBECONFIG with the
templates, as the operator would, and dry-runs the children: it lists the CRs
that would fail to render or apply, and those whose children would change or
be pruned, with the diff (as cuerator diff shows it). Nothing changes.

Exit status: 0 when nothing would break or change, 1 when something would,
2 on an error.`,
		Example: `  # In CI: this branch's templates against those of the main branch
  git worktree add ../main origin/main
  cuerator check --templates schemas --against ../main/schemas

  # Before a rollout, against the live CRs
  cuerator check --templates schemas --preflight`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if against == "" && !preflight {
				return errors.New("give --against DIR (an older template module), --preflight (the live CRs), or both")
			}
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			found := false
			if against != "" {
				old, err := loadLibrary(against)
				if err != nil {
					return fmt.Errorf("--against %s: %w", against, err)
				}
				changes, err := compat.Breaking(old, lib)
				if err != nil {
					return err
				}
				writeBreaking(out, against, changes)
				found = len(changes) > 0
			}
			if preflight {
				colored, err := useColor(color, out)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				verdicts, stranded, err := runPreflight(ctx, lib, namespace, timeout)
				if err != nil {
					return err
				}
				for _, s := range stranded {
					fmt.Fprintf(out, "would fail: %s\n", s)
				}
				found = found || len(stranded) > 0
				touched, err := writePreflight(out, verdicts, colored)
				if err != nil {
					return err
				}
				found = found || touched
			}
			if found {
				return exitCode(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&against, "against", "", "directory of the template module the templates would replace; list the breaking changes from it")
	f.BoolVar(&preflight, "preflight", false, "render every CR in the cluster with the templates and list those that would fail, change or prune")
	f.StringVarP(&namespace, "namespace", "n", "", "with --preflight, only the CRs of this namespace (default: all)")
	f.StringVar(&color, "color", "auto", "colour the preflight's diffs: auto (when standard output is a terminal), always or never")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "deadline for the preflight, API calls included")
	return cmd
}

func writeBreaking(w io.Writer, against string, changes []compat.Change) {
	for _, c := range changes {
		fmt.Fprintf(w, "breaking: %s\n", c)
	}
	switch len(changes) {
	case 0:
		fmt.Fprintf(w, "no breaking change from %s\n", against)
	case 1:
		fmt.Fprintf(w, "1 breaking change from %s\n", against)
	default:
		fmt.Fprintf(w, "%d breaking changes from %s\n", len(changes), against)
	}
}

func runPreflight(ctx context.Context, lib *render.Library, namespace string, timeout time.Duration) ([]preview.Verdict, []string, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.Timeout = timeout
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	stranded, err := strandedVersions(ctx, c, lib)
	if err != nil {
		return nil, nil, err
	}
	verdicts, err := preview.NewDiffer(lib, c).Preflight(ctx, namespace)
	if err != nil {
		return nil, nil, fmt.Errorf("preflight against %s: %w", cfg.Host, err)
	}
	return verdicts, stranded, nil
}

// strandedVersions names, for each kind, the versions the live CRD's
// status.storedVersions lists that the templates no longer declare: the
// API server refuses the new CRD until the CRs stored in them are
// rewritten and storedVersions is trimmed.
func strandedVersions(ctx context.Context, c client.Client, lib *render.Library) ([]string, error) {
	var out []string
	for _, k := range lib.Kinds() {
		name := k.Plural + "." + k.GVK.Group
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := c.Get(ctx, client.ObjectKey{Name: name}, u); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("CRD %s: %w", name, err)
		}
		stored, _, _ := unstructured.NestedStringSlice(u.Object, "status", "storedVersions")
		for _, v := range stored {
			if k.Version(v) == nil {
				out = append(out, fmt.Sprintf("%s: CRD %s lists %s in status.storedVersions, and the templates drop it: the API server would refuse the new CRD; first roll out templates that serve %s and %s, then cuerator migrate", k.GVK.Kind, name, v, v, k.StorageVersion))
			}
		}
	}
	return out, nil
}

// writePreflight prints each CR that would fail, change or prune, and a
// count of each; it reports whether there was any.
func writePreflight(w io.Writer, verdicts []preview.Verdict, color bool) (bool, error) {
	var failed, changed, pruned, unchanged int
	for _, v := range verdicts {
		if v.Err != nil {
			failed++
			if _, err := fmt.Fprintf(w, "%s: would fail: %v\n", v.CR, v.Err); err != nil {
				return false, err
			}
			continue
		}
		change, prune := false, false
		for _, c := range v.Diff.Children {
			switch c.Action {
			case apply.ActionDelete, apply.ActionOrphan:
				prune = true
			default:
				change = true
			}
		}
		if change {
			changed++
		}
		if prune {
			pruned++
		}
		if !change && !prune {
			unchanged++
			continue
		}
		if err := writeDiff(w, v.Diff, color); err != nil {
			return false, err
		}
	}
	_, err := fmt.Fprintf(w, "preflight: %d CRs: %d would fail, %d would change children, %d would prune children, %d unchanged\n",
		len(verdicts), failed, changed, pruned, unchanged)
	return failed+changed+pruned > 0, err
}
