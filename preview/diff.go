// Package preview shows what the operator would do to the children of CRs
// if they were applied as written, without changing the cluster: it renders
// each CR as the operator would, takes the operator's own decisions
// (apply.Decide, apply.DecidePrune) and has the API server dry-run the
// apply of every child it would write.
package preview

import (
	"bytes"
	"context"
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// Differ previews CRs against a cluster.
type Differ struct {
	lib *render.Library
	c   client.Client
}

// NewDiffer returns a Differ that renders with lib and reads and dry-runs
// through c, a client that talks to the API server directly.
func NewDiffer(lib *render.Library, c client.Client) *Differ {
	return &Differ{lib: lib, c: c}
}

// Action is what applying a CR would do to one child: a write in the
// operator's vocabulary (apply.Action), or a refusal.
type Action = apply.Action

// ActionRefuse is a child that exists and belongs to someone else: the
// operator would leave it alone and stall the CR.
const ActionRefuse Action = "refuse"

// ChildDiff is one child that applying the CR would touch.
type ChildDiff struct {
	Object string
	Action Action
	// Diff is a unified diff of the live object and the dry-run result of
	// the apply (apply.ActionConfigure only).
	Diff string
	// Owner is who holds the object now (ActionRefuse only).
	Owner string
}

// Refusal is the conflict the operator would report for a refused child.
func (c ChildDiff) Refusal() apply.Conflict {
	return apply.Conflict{Object: c.Object, Owner: c.Owner}
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
	if err := rendered.InputsNeeded(); err != nil {
		return nil, err
	}
	owner := kind.Owner(cr)

	out := &CRDiff{CR: child.Describe(cr)}
	rules := rendered.FieldRules()
	for _, obj := range rendered.Objects {
		c, err := d.diffChild(ctx, owner, obj, rules[child.EntryOf(obj).ID])
		if err != nil {
			return nil, &apply.ChildError{Object: child.Describe(obj), Err: err}
		}
		if c != nil {
			out.Children = append(out.Children, *c)
		}
	}
	if live == nil {
		return out, nil // no inventory: nothing to prune
	}
	for _, entry := range child.InventoryFromStatus(live).Without(child.InventoryOf(rendered.Objects)) {
		c, err := d.diffStale(ctx, owner, entry)
		if err != nil {
			return nil, &apply.ChildError{Object: entry.ID, Err: err}
		}
		if c != nil {
			out.Children = append(out.Children, *c)
		}
	}
	return out, nil
}

func (d *Differ) diffChild(ctx context.Context, owner child.Owner, obj *unstructured.Unstructured, rules child.FieldRules) (*ChildDiff, error) {
	name := child.Describe(obj)
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	switch err := d.c.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case meta.IsNoMatchError(err):
		return nil, fmt.Errorf("%s is not served by the cluster (is its CRD installed?)", obj.GroupVersionKind())
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}
	obj = apply.Desired(obj, live, rules)
	switch apply.Decide(obj, live, owner) {
	case apply.StepCreate:
		// Dry-run the create too: a child the server would reject is an
		// error now rather than at apply time.
		if _, err := d.dryRunApply(ctx, obj); err != nil {
			return nil, err
		}
		return &ChildDiff{Object: name, Action: apply.ActionCreate}, nil
	case apply.StepRefuse:
		return &ChildDiff{Object: name, Action: ActionRefuse, Owner: apply.CurrentOwner(live)}, nil
	case apply.StepKeep:
		return nil, nil
	}
	after, err := d.dryRunApply(ctx, obj)
	if err != nil {
		return nil, err
	}
	diff, err := unifiedDiff(name, live, after)
	if err != nil || diff == "" {
		return nil, err
	}
	return &ChildDiff{Object: name, Action: apply.ActionConfigure, Diff: diff}, nil
}

// dryRunApply returns obj as the server would store it after the operator's
// server-side apply.
func (d *Differ) dryRunApply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	after := obj.DeepCopy()
	err := d.c.Patch(ctx, after, client.Apply, client.DryRunAll, client.FieldOwner(child.FieldManager), client.ForceOwnership)
	if err != nil {
		return nil, fmt.Errorf("dry-run apply: %w", err)
	}
	return after, nil
}

// diffStale says what the operator's prune would do to a child that the
// CR's inventory lists and the render no longer produces.
func (d *Differ) diffStale(ctx context.Context, owner child.Owner, entry child.InventoryEntry) (*ChildDiff, error) {
	stub, err := entry.Object()
	if err != nil {
		return nil, nil // a malformed entry names nothing the operator would prune
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(stub.GroupVersionKind())
	err = d.c.Get(ctx, client.ObjectKeyFromObject(stub), live)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	switch apply.DecidePrune(live, owner) {
	case apply.PruneRelease:
		return &ChildDiff{Object: child.Describe(live), Action: apply.ActionOrphan}, nil
	case apply.PruneRemove:
		return &ChildDiff{Object: child.Describe(live), Action: apply.ActionDelete}, nil
	}
	return nil, nil
}

// unifiedDiff compares live and after as YAML, leaving out what every write
// changes (resourceVersion, managedFields, generation) and status, which an
// apply does not set, and with a Secret's values masked. It returns "" when
// they are the same.
func unifiedDiff(name string, live, after *unstructured.Unstructured) (string, error) {
	if live.GroupVersionKind() == secretKind {
		live, after = maskSecrets(live, after)
	}
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

var secretKind = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

// Masks of a Secret's values, as kubectl diff writes them.
const (
	maskedValue  = "***"
	maskedBefore = "*** (before)"
	maskedAfter  = "*** (after)"
)

// maskSecrets returns copies of two versions of a Secret with every value of
// data and stringData masked as kubectl diff masks them: a key whose value
// differs between the two shows as changed, and no value shows.
func maskSecrets(live, after *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	live, after = live.DeepCopy(), after.DeepCopy()
	for _, field := range []string{"data", "stringData"} {
		before, _ := live.Object[field].(map[string]any)
		now, _ := after.Object[field].(map[string]any)
		for k, v := range before {
			w, inBoth := now[k]
			if inBoth && w != v {
				before[k], now[k] = maskedBefore, maskedAfter
				continue
			}
			before[k] = maskedValue
			if inBoth {
				now[k] = maskedValue
			}
		}
		for k := range now {
			if _, ok := before[k]; !ok {
				now[k] = maskedValue
			}
		}
	}
	return live, after
}

func comparableYAML(obj *unstructured.Unstructured) ([]byte, error) {
	o := obj.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
	return yaml.Marshal(o.Object)
}
