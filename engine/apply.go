package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the server-side apply field manager of every write.
const FieldManager = "cuerator"

// Applier pushes rendered children to a cluster with server-side apply
// (through fluxcd/pkg/ssa), guards objects it does not own, corrects or
// reports drift and prunes what the template no longer produces.
//
// It remembers, per child, what it last applied and how the server stored
// it. A reconcile in which neither changed issues no request for the child:
// the live object comes from the informer cache.
type Applier struct {
	cache client.Client // reads from the informer cache
	api   client.Reader // reads from the API server, where staleness is unsafe
	rm    *ssa.ResourceManager

	mu        sync.Mutex
	snapshots map[snapshotKey]snapshot
}

type snapshotKey struct {
	owner types.NamespacedName
	uid   types.UID // a CR deleted and created again starts afresh
	child string
}

type snapshot struct {
	desired [32]byte // digest of the desired object last applied
	managed [32]byte // digest of the live object's fields that desired sets
	version string   // resourceVersion after the apply
}

// NewApplier returns an Applier that reads through cache (a client backed
// by informers, with unstructured caching on) and api (a direct reader).
func NewApplier(cache client.Client, api client.Reader) *Applier {
	return &Applier{
		cache:     cache,
		api:       api,
		rm:        ssa.NewResourceManager(cache, nil, ssa.Owner{Field: FieldManager, Group: "cuerator.dev"}),
		snapshots: map[snapshotKey]snapshot{},
	}
}

// Request is one CR's desired children.
type Request struct {
	Owner   *unstructured.Unstructured
	Kind    *Kind
	Objects []*unstructured.Unstructured
	// Previous is the inventory recorded in the CR's status.
	Previous Inventory
	// ReportDrift leaves outside changes in place and only reports them.
	ReportDrift bool
}

// Change is a write to one child.
type Change struct {
	Object string
	Action ssa.Action
}

// Conflict is a child that exists but belongs to someone else.
type Conflict struct {
	Object string
	Owner  string
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s exists and is owned by %s (annotate it %s=true to let this CR adopt it)", c.Object, c.Owner, AnnotationAdopt)
}

// ChildError says which child failed and why.
type ChildError struct {
	Object string
	Err    error
}

func (e *ChildError) Error() string { return e.Object + ": " + e.Err.Error() }
func (e *ChildError) Unwrap() error { return e.Err }

// Result is what one Apply did and found.
type Result struct {
	Changes   []Change
	Drifts    []Drift
	Conflicts []Conflict
	Failed    []*ChildError
	// Inventory is what the CR owns now, to record in its status.
	Inventory Inventory
}

// Err joins the failures.
func (r *Result) Err() error {
	errs := make([]error, len(r.Failed))
	for i, f := range r.Failed {
		errs[i] = f
	}
	return errors.Join(errs...)
}

// Apply brings every child of req to its desired state. A child that fails
// is reported with the API server's message and the others still apply.
// Children in the previous inventory that req no longer has are pruned only
// when every child applied without failure or conflict.
func (a *Applier) Apply(ctx context.Context, req Request) *Result {
	res := &Result{}
	current, notOurs := Inventory{}, Inventory{}
	for _, obj := range req.Objects {
		conflict, err := a.applyChild(ctx, req, obj, res)
		switch {
		case err != nil:
			res.Failed = append(res.Failed, &ChildError{Object: fmtObject(obj), Err: err})
		case conflict != nil:
			res.Conflicts = append(res.Conflicts, *conflict)
			notOurs = append(notOurs, EntryOf(obj))
			continue // not ours: never recorded, so never pruned
		}
		current = append(current, EntryOf(obj))
	}
	current.sort()

	stale := req.Previous.Without(current).Without(notOurs)
	if len(res.Failed) > 0 || len(res.Conflicts) > 0 {
		// Keep what cannot be pruned safely now for a later pass.
		res.Inventory = append(current, stale...)
		res.Inventory.sort()
		return res
	}
	kept := a.prune(ctx, req, stale, res)
	res.Inventory = append(current, kept...)
	res.Inventory.sort()
	return res
}

func (a *Applier) applyChild(ctx context.Context, req Request, obj *unstructured.Unstructured, res *Result) (*Conflict, error) {
	if err := a.checkScope(req.Owner, obj); err != nil {
		return nil, err
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	err := a.cache.Get(ctx, client.ObjectKeyFromObject(obj), live)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read: %w", err)
	}
	if exists && !ownedBy(live, req.Owner, req.Kind) && live.GetAnnotations()[AnnotationAdopt] != "true" {
		return &Conflict{Object: fmtObject(obj), Owner: a.describeOwner(ctx, live)}, nil
	}
	if obj.GetAnnotations()[AnnotationApply] == "create-only" {
		return nil, a.createOnce(ctx, obj, exists, res)
	}

	desired, err := objectDigest(obj)
	if err != nil {
		return nil, err
	}
	key := childKey(req.Owner, obj)
	a.mu.Lock()
	snap, known := a.snapshots[key]
	a.mu.Unlock()
	if exists && known && snap.desired == desired {
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
		drift := Drift{Object: fmtObject(obj), Fields: fields, Managers: managers, Corrected: !req.ReportDrift}
		res.Drifts = append(res.Drifts, drift)
		if req.ReportDrift {
			return nil, nil
		}
	}

	entry, err := a.rm.Apply(ctx, obj.DeepCopy(), a.applyOptions(obj))
	if err != nil {
		return nil, err
	}
	if entry.Action == ssa.CreatedAction || entry.Action == ssa.ConfiguredAction {
		res.Changes = append(res.Changes, Change{Object: fmtObject(obj), Action: entry.Action})
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
	a.mu.Lock()
	a.snapshots[key] = snapshot{desired: desired, managed: managed, version: stored.GetResourceVersion()}
	a.mu.Unlock()
	return nil, nil
}

// describeOwner names who holds live. The informer cache drops
// managedFields to save memory, so it reads them from the API server when
// the object has no controller to name.
func (a *Applier) describeOwner(ctx context.Context, live *unstructured.Unstructured) string {
	if owner := currentOwner(live); owner != "unknown" {
		return owner
	}
	fresh := &unstructured.Unstructured{}
	fresh.SetGroupVersionKind(live.GroupVersionKind())
	if err := a.api.Get(ctx, client.ObjectKeyFromObject(live), fresh); err != nil {
		return "unknown"
	}
	return currentOwner(fresh)
}

// createOnce creates a create-only child that does not exist. It creates
// rather than applies: if the cache had not yet seen the object, an apply
// would overwrite what was generated the first time (a password).
func (a *Applier) createOnce(ctx context.Context, obj *unstructured.Unstructured, exists bool, res *Result) error {
	if exists {
		return nil
	}
	err := a.cache.Create(ctx, obj.DeepCopy(), client.FieldOwner(FieldManager))
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	res.Changes = append(res.Changes, Change{Object: fmtObject(obj), Action: ssa.CreatedAction})
	return nil
}

// applyOptions lets a child be deleted and created again when an immutable
// field changes only if it asks for it, and never for volumes, whose data
// would be lost.
func (a *Applier) applyOptions(obj *unstructured.Unstructured) ssa.ApplyOptions {
	opts := ssa.DefaultApplyOptions()
	switch obj.GetKind() {
	case "PersistentVolumeClaim", "StatefulSet":
	default:
		if obj.GetAnnotations()[AnnotationRecreate] == "true" {
			opts.ForceSelector = map[string]string{AnnotationRecreate: "true"}
		}
	}
	return opts
}

// checkScope refuses children a CR may not produce: kinds the cluster does
// not serve, cluster-scoped objects for a namespaced CR, other namespaces.
func (a *Applier) checkScope(owner, obj *unstructured.Unstructured) error {
	namespaced, err := a.cache.IsObjectNamespaced(obj)
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("%s is not served by the cluster (is its CRD installed?)", obj.GroupVersionKind())
	}
	if err != nil {
		return err
	}
	if owner.GetNamespace() == "" {
		return nil
	}
	if !namespaced {
		return errors.New("a namespaced CR cannot produce cluster-scoped objects")
	}
	if obj.GetNamespace() != owner.GetNamespace() {
		return fmt.Errorf("must be in the CR's namespace %q", owner.GetNamespace())
	}
	return nil
}

func childKey(owner, child *unstructured.Unstructured) snapshotKey {
	return snapshotKey{
		owner: types.NamespacedName{Namespace: owner.GetNamespace(), Name: owner.GetName()},
		uid:   owner.GetUID(),
		child: EntryOf(child).ID,
	}
}

// Forget drops what the Applier remembers of a deleted CR's children.
func (a *Applier) Forget(owner types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.snapshots {
		if k.owner == owner {
			delete(a.snapshots, k)
		}
	}
}

// olderVersion reports whether resourceVersion a is older than b. Versions
// are etcd revisions in practice; when either is not a number, it cannot
// tell and answers false.
func olderVersion(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

func fmtObject(obj *unstructured.Unstructured) string {
	return utils.FmtUnstructured(obj)
}
