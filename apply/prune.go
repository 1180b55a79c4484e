package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// prune removes the stale children: those in the previous inventory that the
// template no longer produces. It reads each one from the API server first
// and acts as DecidePrune says, deleting with a UID precondition so a
// re-created object of the same name is never hit. It returns the entries to
// keep in the inventory: the ones whose delete failed, for a retry.
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
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(stub.GroupVersionKind())
	err := a.api.Get(ctx, client.ObjectKeyFromObject(stub), live)
	// A kind the cluster does not serve has no objects: a child recorded
	// before an apply that failed for that reason was never created. (The
	// REST mapper looks again before it answers no match.)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil
	}
	if err != nil {
		return err
	}
	step := DecidePrune(live, req.Owner)
	if step == PruneSkip {
		return nil // someone else's now: not ours to delete
	}
	defer a.forgetChild(childKey(req.Owner, stub))

	switch step {
	case PruneKeep:
		return nil
	case PruneRelease:
		if err := a.release(ctx, live); err != nil {
			return err
		}
		res.Changes = append(res.Changes, Change{Object: child.Describe(live), Action: ActionOrphan})
		return nil
	}
	uid := live.GetUID()
	err = a.cache.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by another object of that name
	}
	if err != nil {
		return err
	}
	res.Changes = append(res.Changes, Change{Object: child.Describe(live), Action: ActionDelete})
	return nil
}

// release removes cuerator's owner labels and reference from an orphaned
// child, so that no CR claims it any more.
func (a *Applier) release(ctx context.Context, live *unstructured.Unstructured) error {
	patch := client.MergeFrom(live.DeepCopy())
	child.Unstamp(live)
	return a.cache.Patch(ctx, live, patch)
}
