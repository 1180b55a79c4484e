package apply

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Apply brings every child of req to its desired state. A child that fails
// is reported with the API server's message and the others still apply.
// Children in the previous inventory that req no longer has are pruned only
// when every child applied without failure or conflict.
func (a *Applier) Apply(ctx context.Context, req Request) *Result {
	res := &Result{}
	current, notOurs := child.Inventory{}, child.Inventory{}
	for _, obj := range req.Objects {
		conflict, err := a.applyChild(ctx, req, obj, res)
		switch {
		case err != nil:
			res.Failed = append(res.Failed, &ChildError{Object: child.Describe(obj), Err: err})
		case conflict != nil:
			res.Conflicts = append(res.Conflicts, *conflict)
			notOurs = append(notOurs, child.EntryOf(obj))
			continue // not ours: never recorded, so never pruned
		}
		current = append(current, child.EntryOf(obj))
	}
	current.Sort()

	stale := req.Previous.Without(current).Without(notOurs)
	if len(res.Failed) > 0 || len(res.Conflicts) > 0 {
		// Keep what cannot be pruned safely now for a later pass.
		res.Inventory = append(current, stale...)
		res.Inventory.Sort()
		return res
	}
	kept := a.prune(ctx, req, stale, res)
	res.Inventory = append(current, kept...)
	res.Inventory.Sort()
	return res
}

func (a *Applier) applyChild(ctx context.Context, req Request, obj *unstructured.Unstructured, res *Result) (*Conflict, error) {
	if err := a.checkScope(req.Owner, obj); err != nil {
		return nil, err
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	switch err := a.cache.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}

	switch Decide(obj, live, req.Owner) {
	case StepRefuse:
		return &Conflict{Object: child.Describe(obj), Owner: a.describeOwner(ctx, live)}, nil
	case StepKeep:
		return nil, nil
	case StepCreate:
		if child.CreateOnly(obj) {
			return nil, a.createOnce(ctx, obj, res)
		}
	}

	desired, err := objectDigest(obj)
	if err != nil {
		return nil, err
	}
	key := childKey(req.Owner, obj)
	if snap, known := a.remembered(key); live != nil && known && snap.desired == desired {
		managed, err := managedDigest(obj, live)
		if err != nil {
			return nil, err
		}
		if managed == snap.managed || olderVersion(live.GetResourceVersion(), snap.version) {
			// Unchanged, or the cache has not seen our last write yet.
			return nil, nil
		}
		// The cache keeps no managedFields; read who changed what.
		if err := a.api.Get(ctx, client.ObjectKeyFromObject(obj), live); err != nil {
			return nil, fmt.Errorf("read drifted object: %w", err)
		}
		fields, managers, err := describeDrift(obj, live)
		if err != nil {
			return nil, err
		}
		res.Drifts = append(res.Drifts, Drift{Object: child.Describe(obj), Fields: fields, Managers: managers, Corrected: !req.ReportDrift})
		if req.ReportDrift {
			return nil, nil
		}
	}

	opts := ssa.DefaultApplyOptions()
	opts.ForceSelector = recreateSelector(obj)
	entry, err := a.rm.Apply(ctx, obj.DeepCopy(), opts)
	if err != nil {
		return nil, err
	}
	switch entry.Action {
	case ssa.CreatedAction:
		res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionCreate})
	case ssa.ConfiguredAction:
		res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionConfigure})
	}

	// Remember how the server stored it, read past the cache.
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(obj.GroupVersionKind())
	if err := a.api.Get(ctx, client.ObjectKeyFromObject(obj), stored); err != nil {
		return nil, fmt.Errorf("read after apply: %w", err)
	}
	managed, err := managedDigest(obj, stored)
	if err != nil {
		return nil, err
	}
	a.remember(key, snapshot{desired: desired, managed: managed, version: stored.GetResourceVersion()})
	return nil, nil
}

// describeOwner names who holds live. The informer cache drops
// managedFields to save memory, so it reads them from the API server when
// the object has no controller to name.
func (a *Applier) describeOwner(ctx context.Context, live *unstructured.Unstructured) string {
	if owner := CurrentOwner(live); owner != unknownOwner {
		return owner
	}
	fresh := &unstructured.Unstructured{}
	fresh.SetGroupVersionKind(live.GroupVersionKind())
	if err := a.api.Get(ctx, client.ObjectKeyFromObject(live), fresh); err != nil {
		return unknownOwner
	}
	return CurrentOwner(fresh)
}

// createOnce creates a create-only child that does not exist. It creates
// rather than applies: if the cache had not yet seen the object, an apply
// would overwrite what was generated the first time (a password).
func (a *Applier) createOnce(ctx context.Context, obj *unstructured.Unstructured, res *Result) error {
	err := a.cache.Create(ctx, obj.DeepCopy(), client.FieldOwner(child.FieldManager))
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionCreate})
	return nil
}

// checkScope refuses children a CR may not produce: kinds the cluster does
// not serve, cluster-scoped objects for a namespaced CR, other namespaces.
func (a *Applier) checkScope(owner child.Owner, obj *unstructured.Unstructured) error {
	namespaced, err := a.cache.IsObjectNamespaced(obj)
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("%s is not served by the cluster (is its CRD installed?)", obj.GroupVersionKind())
	}
	if err != nil {
		return err
	}
	if owner.Namespace == "" {
		return nil
	}
	if !namespaced {
		return errors.New("a namespaced CR cannot produce cluster-scoped objects")
	}
	if obj.GetNamespace() != owner.Namespace {
		return fmt.Errorf("must be in the CR's namespace %q", owner.Namespace)
	}
	return nil
}

// olderVersion reports whether resourceVersion a is older than b. Versions
// are etcd revisions in practice; when either is not a number, it cannot
// tell and answers false.
func olderVersion(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}
