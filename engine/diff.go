package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Differ previews what the operator would do to the children of CRs if
// they were applied as written, without changing the cluster: it renders
// each CR as the operator would and has the API server dry-run the apply of
// every child.
type Differ struct {
	lib *Library
	c   client.Client
}

// NewDiffer returns a Differ that renders with lib and reads and dry-runs
// through c, a client that talks to the API server directly.
func NewDiffer(lib *Library, c client.Client) *Differ {
	return &Differ{lib: lib, c: c}
}

// ChildAction is what applying a CR would do to one child.
type ChildAction string

const (
	ActionCreate ChildAction = "create"
	ActionChange ChildAction = "change"
	ActionPrune  ChildAction = "prune"
	// ActionOrphan is a prune of a child annotated cuerator.dev/prune:
	// Orphan: it stays, without cuerator's labels.
	ActionOrphan ChildAction = "orphan"
	// ActionRefuse is a child that exists and belongs to someone else: the
	// operator would leave it alone and stall the CR.
	ActionRefuse ChildAction = "refuse"
)

// ChildDiff is one child that applying the CR would touch.
type ChildDiff struct {
	Object string
	Action ChildAction
	// Diff is a unified diff of the live object and the dry-run result of
	// the apply (ActionChange only).
	Diff string
	// Owner is who holds the object now (ActionRefuse only).
	Owner string
}

// CRDiff is what applying one CR would change among its children. Children
// that would stay as they are are not listed.
type CRDiff struct {
	CR       string
	Children []ChildDiff
}

// Changed reports whether applying the CR would change any child.
func (d *CRDiff) Changed() bool { return len(d.Children) > 0 }

// Diff renders cr and compares each child with the cluster. When cr exists
// in the cluster, its UID makes the rendered ownerReferences match the live
// ones, and its status.inventory names the children a render without them
// would prune.
func (d *Differ) Diff(ctx context.Context, cr *unstructured.Unstructured) (*CRDiff, error) {
	kind := d.lib.Kind(cr.GroupVersionKind())
	if kind == nil {
		return nil, fmt.Errorf("no template serves %s (apiVersion %q, kind %q)", cr.GroupVersionKind(), cr.GetAPIVersion(), cr.GetKind())
	}
	cr = cr.DeepCopy()
	if !kind.Namespaced {
		cr.SetNamespace("")
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(kind.GVK)
	err := d.c.Get(ctx, client.ObjectKeyFromObject(cr), live)
	switch {
	case meta.IsNoMatchError(err):
		return nil, fmt.Errorf("the cluster does not serve %s: is its CRD installed?", kind.GVK)
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, fmt.Errorf("read the live CR: %w", err)
	default:
		cr.SetUID(live.GetUID())
	}
	rendered, err := d.lib.RenderCR(cr)
	if err != nil {
		return nil, err
	}

	out := &CRDiff{CR: fmtObject(cr)}
	for _, obj := range rendered.Objects {
		child, err := d.diffChild(ctx, cr, kind, obj)
		if err != nil {
			return nil, &ChildError{Object: fmtObject(obj), Err: err}
		}
		if child != nil {
			out.Children = append(out.Children, *child)
		}
	}
	if live == nil {
		return out, nil // no inventory: nothing to prune
	}
	for _, entry := range InventoryFromStatus(live).Without(InventoryOf(rendered.Objects)) {
		child, err := d.diffStale(ctx, cr, kind, entry)
		if err != nil {
			return nil, &ChildError{Object: entry.ID, Err: err}
		}
		if child != nil {
			out.Children = append(out.Children, *child)
		}
	}
	return out, nil
}

func (d *Differ) diffChild(ctx context.Context, cr *unstructured.Unstructured, kind *Kind, obj *unstructured.Unstructured) (*ChildDiff, error) {
	name := fmtObject(obj)
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	err := d.c.Get(ctx, client.ObjectKeyFromObject(obj), live)
	switch {
	case meta.IsNoMatchError(err):
		return nil, fmt.Errorf("%s is not served by the cluster (is its CRD installed?)", obj.GroupVersionKind())
	case apierrors.IsNotFound(err):
		// Dry-run the create too: a child the server would reject is an
		// error now rather than at apply time.
		if _, err := d.dryRunApply(ctx, obj); err != nil {
			return nil, err
		}
		return &ChildDiff{Object: name, Action: ActionCreate}, nil
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}
	if !ownedBy(live, cr, kind) && live.GetAnnotations()[AnnotationAdopt] != "true" {
		return &ChildDiff{Object: name, Action: ActionRefuse, Owner: currentOwner(live)}, nil
	}
	if obj.GetAnnotations()[AnnotationApply] == "create-only" {
		return nil, nil // never updated once created
	}
	after, err := d.dryRunApply(ctx, obj)
	if err != nil {
		return nil, err
	}
	diff, err := unifiedDiff(name, live, after)
	if err != nil || diff == "" {
		return nil, err
	}
	return &ChildDiff{Object: name, Action: ActionChange, Diff: diff}, nil
}

// dryRunApply returns obj as the server would store it after the operator's
// server-side apply.
func (d *Differ) dryRunApply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	after := obj.DeepCopy()
	err := d.c.Patch(ctx, after, client.Apply, client.DryRunAll, client.FieldOwner(FieldManager), client.ForceOwnership)
	if err != nil {
		return nil, fmt.Errorf("dry-run apply: %w", err)
	}
	return after, nil
}

// diffStale says what the operator's prune would do to a child that the
// CR's inventory lists and the render no longer produces; the same rules as
// Applier.pruneOne, without the delete.
func (d *Differ) diffStale(ctx context.Context, cr *unstructured.Unstructured, kind *Kind, entry InventoryEntry) (*ChildDiff, error) {
	stub, err := entry.Object()
	if err != nil {
		return nil, nil // a malformed entry names nothing the operator would prune
	}
	switch stub.GetKind() {
	case "Namespace", "CustomResourceDefinition":
		return nil, nil
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(stub.GroupVersionKind())
	err = d.c.Get(ctx, client.ObjectKeyFromObject(stub), live)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if !ownedBy(live, cr, kind) {
		return nil, nil
	}
	name := fmtObject(live)
	switch prunePolicy(live) {
	case PruneRetain:
		return nil, nil
	case PruneOrphan:
		return &ChildDiff{Object: name, Action: ActionOrphan}, nil
	}
	return &ChildDiff{Object: name, Action: ActionPrune}, nil
}

// unifiedDiff compares live and after as YAML, leaving out what every write
// changes (resourceVersion, managedFields, generation) and status, which an
// apply does not set. It returns "" when they are the same.
func unifiedDiff(name string, live, after *unstructured.Unstructured) (string, error) {
	a, err := comparableYAML(live)
	if err != nil {
		return "", err
	}
	b, err := comparableYAML(after)
	if err != nil {
		return "", err
	}
	if bytes.Equal(a, b) {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(a)),
		B:        difflib.SplitLines(string(b)),
		FromFile: name + " (live)",
		ToFile:   name + " (after apply)",
		Context:  3,
	})
}

func comparableYAML(obj *unstructured.Unstructured) ([]byte, error) {
	o := obj.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
	return yaml.Marshal(o.Object)
}

// ANSI colours of the report.
const (
	colorReset = "\x1b[0m"
	colorBold  = "\x1b[1m"
	colorRed   = "\x1b[31m"
	colorGreen = "\x1b[32m"
	colorCyan  = "\x1b[36m"
)

// Write prints the report: one line per child, and the diff of each
// changed one. With color, additions are green and removals red.
func (d *CRDiff) Write(w io.Writer, color bool) error {
	paint := func(c, s string) string {
		if !color || c == "" {
			return s
		}
		return c + s + colorReset
	}
	var b strings.Builder
	line := func(c, s string) { b.WriteString(paint(c, s) + "\n") }
	for _, c := range d.Children {
		prefix := d.CR + ": " + c.Object
		switch c.Action {
		case ActionCreate:
			line(colorGreen, prefix+" would be created")
		case ActionPrune:
			line(colorRed, prefix+" would be pruned")
		case ActionOrphan:
			line(colorRed, prefix+" would be orphaned (kept, without cuerator's labels)")
		case ActionRefuse:
			line(colorRed, d.CR+": "+Conflict{Object: c.Object, Owner: c.Owner}.String()+"; the operator would leave it and stall")
		case ActionChange:
			line(colorBold, prefix+" would change")
			for _, l := range strings.Split(strings.TrimSuffix(c.Diff, "\n"), "\n") {
				line(diffLineColor(l), l)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func diffLineColor(line string) string {
	switch {
	case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
		return colorBold
	case strings.HasPrefix(line, "+"):
		return colorGreen
	case strings.HasPrefix(line, "-"):
		return colorRed
	case strings.HasPrefix(line, "@@"):
		return colorCyan
	}
	return ""
}
