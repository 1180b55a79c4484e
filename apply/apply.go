package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Apply brings every child of req to its desired state. A child that fails
// is reported with the API server's message and the others still apply.
// Children the owner had (its previous inventory, and owner-labelled
// children in the cache) that req no longer has are pruned only when every
// child applied without failure or conflict.
func (a *Applier) Apply(ctx context.Context, req Request) *Result {
	res := &Result{}
	var current, notOurs child.Inventory
	for _, out := range a.applyStaged(ctx, req) {
		res.Changes = append(res.Changes, out.res.Changes...)
		res.Drifts = append(res.Drifts, out.res.Drifts...)
		res.Orphans = res.Orphans || out.res.Orphans
		for id, live := range out.res.Lives {
			res.saw(id, live)
		}
		switch {
		case out.err != nil:
			res.Failed = append(res.Failed, &ChildError{Object: child.Describe(out.obj), Err: out.err})
		case out.conflict != nil:
			res.Conflicts = append(res.Conflicts, *out.conflict)
			notOurs = append(notOurs, out.entry)
			continue // not ours: never recorded, so never pruned
		}
		current = append(current, out.entry)
	}
	for _, obj := range req.Held {
		if e, ok := req.Previous.Find(child.EntryOf(obj).ID); ok {
			current = append(current, e)
		}
	}
	current.Sort()

	found, err := a.labelled(ctx, req)
	if err != nil {
		res.Failed = append(res.Failed, &ChildError{Object: child.Describe(ownerObject(req.Owner)), Err: err})
	}
	stale := mayHaveMade(req, req.Previous.Union(found).Without(current).Without(notOurs))
	if len(res.Failed) > 0 || len(res.Conflicts) > 0 || req.NoPrune {
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

// childWorkers bounds the children of one CR applied at once.
const childWorkers = 4

// outcome is what applying one child did.
type outcome struct {
	obj      *unstructured.Unstructured
	entry    child.InventoryEntry
	conflict *Conflict
	err      error
	res      Result // its changes and drifts
}

// applyStaged applies the children stage by stage (child.Stage), the
// children of a stage concurrently: a reconcile waits for the slowest
// request of each stage rather than for the sum of them all. Outcomes come
// back in the order of req.Objects.
func (a *Applier) applyStaged(ctx context.Context, req Request) []outcome {
	outs := make([]outcome, len(req.Objects))
	stages := map[int][]int{}
	var order []int
	for i, obj := range req.Objects {
		s := child.Stage(obj.GroupVersionKind().GroupKind())
		if _, ok := stages[s]; !ok {
			order = append(order, s)
		}
		stages[s] = append(stages[s], i)
	}
	slices.Sort(order)
	for _, s := range order {
		var wg sync.WaitGroup
		limit := make(chan struct{}, childWorkers)
		for _, i := range stages[s] {
			wg.Go(func() {
				limit <- struct{}{}
				defer func() { <-limit }()
				o := &outs[i]
				o.obj = req.Objects[i]
				o.entry, o.conflict, o.err = a.applyChild(ctx, req, o.obj, &o.res)
			})
		}
		wg.Wait()
	}
	return outs
}

// applyChild applies one child and returns its inventory entry, with the
// digests of what it is now.
func (a *Applier) applyChild(ctx context.Context, req Request, obj *unstructured.Unstructured, res *Result) (child.InventoryEntry, *Conflict, error) {
	entry := child.EntryOf(obj)
	if err := a.checkScope(req.Owner, obj); err != nil {
		return entry, nil, err
	}
	live, err := a.cached(ctx, obj)
	if err != nil {
		return entry, nil, err
	}
	if live == nil {
		res.Orphans = child.PolicyOf(obj, obj.GroupVersionKind().GroupKind()) == child.PruneOrphan
		if child.CreateOnly(obj) {
			return a.createOnce(ctx, req, obj, res)
		}
		created := ownedUntilRecorded(obj, req.Owner)
		stored, err := a.createAbsent(ctx, created)
		if err == nil {
			res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: ActionCreate})
			if leave := req.Fields[entry.ID].Leave; len(leave) > 0 {
				if err := a.handOver(ctx, created, leave); err != nil {
					return entry, nil, err
				}
				created = without(created, leave)
				stored = created.DeepCopy()
				if err := a.applyPatch(ctx, stored); err != nil {
					return entry, nil, err
				}
			}
			res.saw(entry.ID, stored)
			return a.remember(req.Owner, entry, created, stored)
		}
		if !apierrors.IsConflict(err) {
			return entry, nil, err
		}
		// It exists, and the cache does not hold it: it is not labelled as
		// cuerator's, or the cache has not caught up. Decide on what the API
		// server has.
		if live, err = a.fresh(ctx, obj); err != nil {
			return entry, nil, err
		}
		if live == nil {
			return entry, nil, fmt.Errorf("created and deleted by someone else meanwhile; retried")
		}
	}

	rules := req.Fields[entry.ID]
	obj = Desired(obj, live, rules)
	gk := obj.GroupVersionKind().GroupKind()
	res.Orphans = child.PolicyOf(obj, gk) == child.PruneOrphan || child.PolicyOf(live, gk) == child.PruneOrphan
	step := Decide(obj, live, req.Owner)
	if step == StepRefuse {
		return entry, &Conflict{Object: child.Describe(obj), Owner: a.describeOwner(ctx, live)}, nil
	}
	res.saw(entry.ID, live)
	if step == StepKeep {
		// Never written again, but for the reference it was created with
		// (ownedUntilRecorded) when its policy keeps it without one.
		if len(obj.GetOwnerReferences()) == 0 && ownedBy(live, req.Owner) && len(live.GetOwnerReferences()) > 0 {
			if err := a.dropOwnerReferences(ctx, live); err != nil {
				return entry, nil, err
			}
		}
		return entry, nil, nil
	}

	key := keyOf(req.Owner, entry.ID)
	// What the template says, not the live values it keeps: a change to a
	// field whose drift is ignored is no news.
	compared := without(obj, rules.IgnoreDrift)
	desired, err := objectDigest(compared)
	if err != nil {
		return entry, nil, err
	}
	known, inMemory := a.memory.get(key)
	if !inMemory {
		if e, ok := req.Previous.Find(entry.ID); ok && e.Desired != "" {
			known = record{desired: e.Desired, managed: e.Managed}
		}
	}
	if known.desired == desired {
		if inMemory && live.GetResourceVersion() == known.verified {
			return known.entry(entry), nil, nil // exactly as last seen
		}
		if inMemory && OlderVersion(live.GetResourceVersion(), known.written) {
			return known.entry(entry), nil, nil // the cache has not seen our last write yet
		}
		managed, err := managedDigest(compared, live)
		if err != nil {
			return entry, nil, err
		}
		if managed == known.managed {
			// Unchanged: a change outside the fields cuerator sets (status,
			// another controller's fields) is no drift.
			known.verified = live.GetResourceVersion()
			a.memory.put(key, known)
			return known.entry(entry), nil, nil
		}
		drift, err := a.drift(ctx, obj, req.ReportDrift)
		if err != nil {
			return entry, nil, err
		}
		res.Drifts = append(res.Drifts, drift)
		if req.ReportDrift {
			return known.entry(entry), nil, nil
		}
	}

	if len(rules.Leave) > 0 {
		// Left to others, yet still cuerator's (it created the child before
		// the template left them): hand them over first, or leaving them
		// out of the apply would remove them.
		fresh, err := a.fresh(ctx, obj)
		if err != nil {
			return entry, nil, err
		}
		if fresh != nil && ownsAny(fresh, child.FieldManager, rules.Leave) {
			if err := a.handOver(ctx, fresh, rules.Leave); err != nil {
				return entry, nil, err
			}
		}
	}
	stored, action, err := a.update(ctx, obj, live)
	if err != nil {
		return entry, nil, err
	}
	if action != "" {
		res.Changes = append(res.Changes, Change{Object: child.Describe(obj), Action: action})
	}
	res.saw(entry.ID, stored)
	return a.remember(req.Owner, entry, compared, stored)
}

// entry is e with the record's digests.
func (r record) entry(e child.InventoryEntry) child.InventoryEntry {
	e.Desired, e.Managed = r.desired, r.managed
	return e
}

// remember records what was applied as obj and stored as stored, and
// returns the inventory entry that says so.
func (a *Applier) remember(owner child.Owner, entry child.InventoryEntry, obj, stored *unstructured.Unstructured) (child.InventoryEntry, *Conflict, error) {
	desired, err := objectDigest(obj)
	if err != nil {
		return entry, nil, err
	}
	managed, err := managedDigest(obj, stored)
	if err != nil {
		return entry, nil, err
	}
	r := record{desired: desired, managed: managed, written: stored.GetResourceVersion(), verified: stored.GetResourceVersion()}
	a.memory.put(keyOf(owner, entry.ID), r)
	return r.entry(entry), nil, nil
}

// cached returns obj's live object from the cache of owner-labelled
// objects, or nil when the cache does not hold it.
func (a *Applier) cached(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	switch err := a.fromCache(ctx, func(ctx context.Context) error { return a.children.Get(ctx, client.ObjectKeyFromObject(obj), live) }); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}
	return live, nil
}

// cachedVersion is the resourceVersion of obj in the cache, "" when the
// cache has none. It reads obj in the form the cache holds it: no
// conversion, for the check every resync makes of every child.
func (a *Applier) cachedVersion(ctx context.Context, obj *unstructured.Unstructured) (string, error) {
	live := CachedObject(a.children.Scheme(), obj.GroupVersionKind())
	// Its version alone is read: no copy of the cache's object.
	switch err := a.fromCache(ctx, func(ctx context.Context) error {
		return a.children.Get(ctx, client.ObjectKeyFromObject(obj), live, client.UnsafeDisableDeepCopy)
	}); {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read: %w", err)
	}
	return live.GetResourceVersion(), nil
}

// fresh reads obj from the API server, managedFields included; nil when it
// does not exist.
func (a *Applier) fresh(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	switch err := a.api.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}
	return live, nil
}

// describeOwner names who holds live: its controller, else the field
// managers that wrote it (the cache keeps their names).
func (a *Applier) describeOwner(ctx context.Context, live *unstructured.Unstructured) string {
	if owner := CurrentOwner(live); owner != unknownOwner {
		return owner
	}
	fresh, err := a.fresh(ctx, live)
	if err != nil || fresh == nil {
		return unknownOwner
	}
	return CurrentOwner(fresh)
}

// checkScope refuses children a CR may not produce: kinds the cluster does
// not serve, cluster-scoped objects for a namespaced CR, other namespaces.
func (a *Applier) checkScope(owner child.Owner, obj *unstructured.Unstructured) error {
	namespaced, err := a.isNamespaced(obj)
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

// isNamespaced says whether obj's kind is namespaced, as the REST mapper
// answered it the first time.
func (a *Applier) isNamespaced(obj *unstructured.Unstructured) (bool, error) {
	gvk := obj.GroupVersionKind()
	if v, ok := a.scopes.Load(gvk); ok {
		return v.(bool), nil
	}
	namespaced, err := a.children.IsObjectNamespaced(obj)
	if err != nil {
		return false, err // a kind not served yet may be soon: ask again
	}
	a.scopes.Store(gvk, namespaced)
	return namespaced, nil
}

// isNotServed reports whether err says the cluster serves no such kind.
func isNotServed(err error) bool { return meta.IsNoMatchError(err) }

// ownerObject is a stub of the owner, for messages.
func ownerObject(o child.Owner) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GVK)
	u.SetNamespace(o.Namespace)
	u.SetName(o.Name)
	return u
}

// cacheWait bounds how long a read waits for the cache of a child kind to
// sync. A kind whose CRD was deleted after it was watched (cert-manager
// uninstalled) has an informer that never syncs again: a read that waited
// for it would hold a reconcile worker until the reconcile's deadline.
const cacheWait = 3 * time.Second

// fromCache runs a read of the children's cache within cacheWait; one
// that times out waiting for the cache says so.
func (a *Applier) fromCache(ctx context.Context, read func(context.Context) error) error {
	waitCtx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	err := read(waitCtx)
	if apierrors.IsTimeout(err) && ctx.Err() == nil {
		return &unsyncedError{err: err}
	}
	return err
}

// unsyncedError is a read whose kind's cache did not sync in time.
type unsyncedError struct{ err error }

func (e *unsyncedError) Error() string {
	return "the cache of its kind does not sync (is the kind still served?): " + e.err.Error()
}

func (e *unsyncedError) Unwrap() error { return e.err }

// OlderVersion reports whether resourceVersion a is older than b, as the
// API server's versions compare (KEP-5504; etcd revisions in practice);
// when either does not compare, it cannot tell and answers false.
func OlderVersion(a, b string) bool {
	c, err := resourceversion.CompareResourceVersion(a, b)
	return err == nil && c < 0
}
