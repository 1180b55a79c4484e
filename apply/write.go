package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// The writes of a child. Each costs one request; the API server's response
// is how the child was stored, which the drift digests start from.

// absent is a resourceVersion no object can have (etcd's first revision is
// written by the API server's own bootstrap). An apply carrying it creates
// the object when there is none (a create ignores resourceVersion) and fails
// with a conflict, changing nothing, when there is one: one request that
// creates, and never writes over an object it has not looked at.
const absent = "1"

// createAbsent creates obj with one server-side apply, unless an object of
// that name exists (a conflict error).
func (a *Applier) createAbsent(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	stored := obj.DeepCopy()
	stored.SetResourceVersion(absent)
	if err := a.applyPatch(ctx, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// update server-side applies obj over live, taking the fields cuerator sets
// from whoever holds them. A change of an immutable field re-creates the
// child when it asks for that (and its kind allows it). It returns how the
// child was stored and the write it was: "" when the apply changed nothing.
func (a *Applier) update(ctx context.Context, obj, live *unstructured.Unstructured) (*unstructured.Unstructured, Action, error) {
	stored := obj.DeepCopy()
	err := a.applyPatch(ctx, stored)
	if apierrors.IsInvalid(err) && recreateSelector(obj) != nil {
		return a.recreate(ctx, obj)
	}
	if err != nil {
		return nil, "", err
	}
	if stored.GetResourceVersion() == live.GetResourceVersion() {
		return stored, "", nil
	}
	return stored, ActionConfigure, nil
}

// recreate hands obj to fluxcd's ResourceManager, which dry-runs the apply,
// and on an immutable-field error deletes the live object (by UID) and
// applies obj again.
func (a *Applier) recreate(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, Action, error) {
	opts := ssa.DefaultApplyOptions()
	opts.ForceSelector = recreateSelector(obj)
	if _, err := a.recreator.Apply(ctx, obj.DeepCopy(), opts); err != nil {
		return nil, "", err
	}
	stored, err := a.fresh(ctx, obj)
	if err != nil {
		return nil, "", err
	}
	if stored == nil {
		return nil, "", fmt.Errorf("deleted right after it was re-created")
	}
	return stored, ActionRecreate, nil
}

// handOver gives the fields at paths of a child, with their values in
// from, to child.FieldManagerInitial as well. cuerator's next apply, which
// leaves them out, then releases its own hold on them without removing
// them, and whoever changes them next (an autoscaler) owns them.
func (a *Applier) handOver(ctx context.Context, from *unstructured.Unstructured, paths []string) error {
	initial := only(from, paths)
	if err := a.children.Apply(ctx, client.ApplyConfigurationFromUnstructured(initial), client.FieldOwner(child.FieldManagerInitial), client.ForceOwnership); err != nil {
		return fmt.Errorf("hand %s over to %s: %w", strings.Join(paths, ", "), child.FieldManagerInitial, err)
	}
	return nil
}

func (a *Applier) applyPatch(ctx context.Context, obj *unstructured.Unstructured) error {
	return a.children.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(child.FieldManager), client.ForceOwnership)
}

// createOnce creates a create-only child that the cache does not hold. It
// creates rather than applies: an object of that name is never written
// over, so what was generated the first time (a password) stays. When one
// exists, the adoption guard decides on it as on any other child.
func (a *Applier) createOnce(ctx context.Context, req Request, obj *unstructured.Unstructured, res *Result) (child.InventoryEntry, *Conflict, error) {
	entry := child.EntryOf(obj)
	if err := a.checkNotNeeded(ctx, req.Owner, obj); err != nil {
		return entry, nil, err
	}
	err := a.children.Create(ctx, ownedUntilRecorded(obj, req.Owner).DeepCopy(), client.FieldOwner(child.FieldManager))
	if err == nil {
		res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionCreate})
		return entry, nil, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return entry, nil, err
	}
	live, err := a.fresh(ctx, obj)
	if err != nil || live == nil {
		return entry, nil, err
	}
	if Decide(obj, live, req.Owner) == StepRefuse {
		return entry, &Conflict{Object: child.Describe(obj), Owner: CurrentOwner(live)}, nil
	}
	if !req.Owner.HasOwnerLabels(live) {
		// Handed over (adopt): mark it as the CR's, content untouched.
		if err := a.claim(ctx, req.Owner, obj); err != nil {
			return entry, nil, err
		}
		res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionConfigure})
	}
	return entry, nil, nil
}

// MissingError is a create-only child that is gone while an object made
// with its first value still exists: creating it anew would lock that
// object's data out (a database volume and a new password). Nothing but a
// person can fix it.
type MissingError struct {
	Child, NeededBy string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s is missing, and %s holds data made with it: a new one would lock that data out. Restore %s as it was (from a backup of it), or delete %s to start afresh", e.Child, e.NeededBy, e.Child, e.NeededBy)
}

// checkNotNeeded refuses to create obj anew while the object its
// AnnotationNeededBy names exists.
func (a *Applier) checkNotNeeded(ctx context.Context, owner child.Owner, obj *unstructured.Unstructured) error {
	stub, err := child.NeededBy(obj, obj.GetNamespace())
	if err != nil || stub == nil {
		return err
	}
	dependent, err := a.fresh(ctx, stub)
	if err != nil {
		return err
	}
	if dependent != nil {
		return &MissingError{Child: child.Describe(obj), NeededBy: child.Describe(dependent)}
	}
	return nil
}

// claim applies the owner's labels and reference alone to an object handed
// over to a CR, so that it is cached and found as the CR's from then on.
func (a *Applier) claim(ctx context.Context, owner child.Owner, obj *unstructured.Unstructured) error {
	marks := &unstructured.Unstructured{}
	marks.SetGroupVersionKind(obj.GroupVersionKind())
	marks.SetNamespace(obj.GetNamespace())
	marks.SetName(obj.GetName())
	marks.SetLabels(owner.Labels())
	marks.SetOwnerReferences(obj.GetOwnerReferences())
	return a.applyPatch(ctx, marks)
}

// dropOwnerReferences takes the references off live, a create-only child
// created owned until its CR recorded it. A create-only child is never
// applied, so a merge patch does it.
func (a *Applier) dropOwnerReferences(ctx context.Context, live *unstructured.Unstructured) error {
	patch := client.MergeFrom(live.DeepCopy())
	live.SetOwnerReferences(nil)
	return a.children.Patch(ctx, live, patch, client.FieldOwner(child.FieldManager))
}

// drift reads the drifted child from the API server (the cache keeps no
// managedFields) and says which fields changed and who changed them.
func (a *Applier) drift(ctx context.Context, obj *unstructured.Unstructured, report bool) (Drift, error) {
	live, err := a.fresh(ctx, obj)
	if err != nil {
		return Drift{}, fmt.Errorf("read drifted object: %w", err)
	}
	if live == nil {
		return Drift{}, fmt.Errorf("deleted by someone else; re-created on the next reconcile")
	}
	fields, managers, err := describeDrift(obj, live)
	if err != nil {
		return Drift{}, err
	}
	return Drift{Object: child.Describe(obj), Fields: fields, Managers: managers, Corrected: !report}, nil
}
