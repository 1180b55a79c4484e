package apply

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// prune acts on the stale children, those the owner had that the template
// no longer produces, as DecidePrune says. It decides on the cached object,
// which costs no request when the answer is to keep it, and reads the API
// server again before it deletes or releases anything; a delete carries a
// UID precondition, so a re-created object of the same name is never hit.
// It returns the entries to keep in the inventory: those whose prune failed,
// for a retry.
func (a *Applier) prune(ctx context.Context, req Request, stale child.Inventory, res *Result) child.Inventory {
	var keep child.Inventory
	for _, entry := range stale {
		stub, err := entry.Object()
		if err != nil {
			continue // a malformed entry names nothing we could own
		}
		if err := a.pruneOne(ctx, req, stub, res); err != nil {
			res.Failed = append(res.Failed, &ChildError{Object: child.Describe(stub), Err: fmt.Errorf("prune: %w", err)})
			keep = append(keep, entry)
		}
	}
	return keep
}

func (a *Applier) pruneOne(ctx context.Context, req Request, stub *unstructured.Unstructured, res *Result) error {
	if child.NeverDeleted(stub.GroupVersionKind().GroupKind()) {
		return nil // not even read: nothing would be done to it
	}
	live, err := a.cached(ctx, stub)
	if meta.IsNoMatchError(err) {
		// The version the inventory recorded may be served no more while the
		// kind still is: look the kind up again, at whatever version it is
		// served, rather than leave the child for ever.
		mapping, merr := a.children.RESTMapper().RESTMapping(stub.GroupVersionKind().GroupKind())
		if merr != nil {
			// A kind the cluster does not serve has no objects: a child
			// recorded before an apply that failed for that reason was
			// never created.
			return nil
		}
		stub.SetGroupVersionKind(mapping.GroupVersionKind)
		live, err = a.cached(ctx, stub)
	}
	if err != nil {
		return err
	}
	if live == nil || !writes(DecidePrune(live, req.Owner)) {
		// Gone, or no longer labelled as the CR's (either way not ours to
		// touch), or kept; should the cache lag behind a child created just
		// now, its owner labels bring it back to a later reconcile.
		if live != nil {
			a.memory.drop(keyOf(req.Owner, child.EntryOf(stub).ID))
		}
		return nil
	}
	if live, err = a.fresh(ctx, stub); err != nil || live == nil {
		return err
	}
	step := DecidePrune(live, req.Owner)
	defer a.memory.drop(keyOf(req.Owner, child.EntryOf(stub).ID))
	switch step {
	case PruneSkip, PruneKeep:
		return nil
	case PruneRelease:
		if err := a.release(ctx, live); err != nil {
			return err
		}
		res.Changes = append(res.Changes, Change{Object: child.Describe(live), Action: ActionOrphan})
		return nil
	}
	uid := live.GetUID()
	err = a.children.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by another object of that name
	}
	if err != nil {
		return err
	}
	res.Changes = append(res.Changes, Change{Object: child.Describe(live), Action: ActionDelete})
	return nil
}

// writes reports whether a prune step changes the cluster.
func writes(step PruneStep) bool { return step == PruneRelease || step == PruneRemove }

// release removes cuerator's owner labels and reference from an orphaned
// child, so that no CR claims it any more.
func (a *Applier) release(ctx context.Context, live *unstructured.Unstructured) error {
	patch := client.MergeFrom(live.DeepCopy())
	child.Unstamp(live)
	return a.children.Patch(ctx, live, patch)
}

// Release takes the owner's labels and reference off every child of its
// with policy Orphan (the template's or a user's on the live child), before
// the owner goes: such a child outlives its CR unclaimed. It reads the API
// server before each write.
func (a *Applier) Release(ctx context.Context, owner child.Owner, kinds []schema.GroupVersionKind) error {
	found, err := a.labelled(ctx, Request{Owner: owner, ChildKinds: kinds})
	if err != nil {
		return err
	}
	var errs []error
	for _, entry := range found {
		stub, err := entry.Object()
		if err != nil {
			continue
		}
		live, err := a.fresh(ctx, stub)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if live == nil || !ownedBy(live, owner) || child.PolicyOf(live, live.GroupVersionKind().GroupKind()) != child.PruneOrphan {
			continue
		}
		if err := a.release(ctx, live); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", child.Describe(live), err))
		}
	}
	return errors.Join(errs...)
}

// Withdraw deletes owner's children stage by stage: it acts on the first
// stage that still has a child of owner's to delete, deleting what is not
// being deleted yet, and returns what that stage still waits for (nil once
// every stage is gone). Children kept by their policy (Retain) are not
// waited for; those with policy Orphan are released. Each child is read
// from the API server first and deleted with a UID precondition.
func (a *Applier) Withdraw(ctx context.Context, owner child.Owner, stages [][]*unstructured.Unstructured) ([]string, error) {
	for _, stage := range stages {
		var waiting []string
		for _, obj := range stage {
			if child.NeverDeleted(obj.GroupVersionKind().GroupKind()) {
				continue
			}
			live, err := a.fresh(ctx, obj)
			if err != nil {
				return nil, err
			}
			if live == nil {
				continue
			}
			switch DecidePrune(live, owner) {
			case PruneSkip, PruneKeep:
				continue
			case PruneRelease:
				if err := a.release(ctx, live); err != nil {
					return nil, fmt.Errorf("release %s: %w", child.Describe(live), err)
				}
				continue
			}
			waiting = append(waiting, child.Describe(live))
			if live.GetDeletionTimestamp() != nil {
				continue // going: its finalizers decide when
			}
			uid := live.GetUID()
			err = a.children.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return nil, fmt.Errorf("delete %s: %w", child.Describe(live), err)
			}
		}
		if len(waiting) > 0 {
			return waiting, nil
		}
	}
	return nil, nil
}
