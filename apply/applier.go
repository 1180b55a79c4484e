// Package apply brings a CR's rendered children to the cluster with
// server-side apply (over fluxcd/pkg/ssa), guards objects it does not own,
// corrects or reports drift, prunes what the template no longer produces and
// reads the children's health. Its decisions (decide.go) are pure functions
// that the preview shares. It knows the API server and the child contract;
// it knows nothing of CUE or of the templates.
package apply

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Applier pushes rendered children to a cluster.
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

// NewApplier returns an Applier that reads through cache (a client backed
// by informers, with unstructured caching on) and api (a direct reader).
func NewApplier(cache client.Client, api client.Reader) *Applier {
	return &Applier{
		cache:     cache,
		api:       api,
		rm:        ssa.NewResourceManager(cache, nil, ssa.Owner{Field: child.FieldManager, Group: "cuerator.dev"}),
		snapshots: map[snapshotKey]snapshot{},
	}
}

// Request is one CR's desired children.
type Request struct {
	Owner   child.Owner
	Objects []*unstructured.Unstructured
	// Previous is the inventory recorded in the CR's status.
	Previous child.Inventory
	// ReportDrift leaves outside changes in place and only reports them.
	ReportDrift bool
}

// Action is a write to a child, in the vocabulary the operator's events and
// the preview share.
type Action string

const (
	ActionCreate    Action = "create"
	ActionConfigure Action = "configure"
	ActionDelete    Action = "delete"
	ActionOrphan    Action = "orphan"
)

// Change is a write to one child.
type Change struct {
	Object string
	Action Action
}

// Conflict is a child that exists but belongs to someone else.
type Conflict struct {
	Object string
	Owner  string
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s exists and is owned by %s (annotate it %s=true to let this CR adopt it)", c.Object, c.Owner, child.AnnotationAdopt)
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
	Inventory child.Inventory
}

// Err joins the failures.
func (r *Result) Err() error {
	errs := make([]error, len(r.Failed))
	for i, f := range r.Failed {
		errs[i] = f
	}
	return errors.Join(errs...)
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

func childKey(owner child.Owner, obj *unstructured.Unstructured) snapshotKey {
	return snapshotKey{owner: owner.Key(), uid: owner.UID, child: child.EntryOf(obj).ID}
}

func (a *Applier) remembered(key snapshotKey) (snapshot, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	snap, ok := a.snapshots[key]
	return snap, ok
}

func (a *Applier) remember(key snapshotKey, snap snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.snapshots[key] = snap
}

func (a *Applier) forgetChild(key snapshotKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.snapshots, key)
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
