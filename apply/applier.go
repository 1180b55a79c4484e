// Package apply brings a CR's rendered children to the cluster with
// server-side apply, guards objects it does not own, corrects or reports
// drift, prunes what the template no longer produces and reads the
// children's health. Its decisions (decide.go) are pure functions that the
// preview shares. It knows the API server and the child contract; it knows
// nothing of CUE or of the templates.
//
// A child costs one request when it is created or changed, and none when it
// is unchanged: children are read from an informer cache that holds only
// objects with cuerator's owner labels, and what a child was last applied
// as is remembered in memory and in the CR's inventory.
package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Applier pushes rendered children to a cluster.
type Applier struct {
	// children reads from the informer cache of owner-labelled objects
	// and writes to the API server.
	children client.Client
	// api reads from the API server, where a stale read is unsafe or the
	// object is not in the cache (it is not labelled as cuerator's).
	api client.Reader
	// recreator re-creates a child whose immutable field changed: fluxcd's
	// ResourceManager detects that by a dry-run, over a client that reads
	// from the API server and deletes with a UID precondition.
	recreator *ssa.ResourceManager
	memory    memory
	// scopes is whether each kind the children are of is namespaced, as
	// the REST mapper first answered (it keeps its answers too; a CRD's
	// scope is immutable): asking it costs about 0.2 ms of CPU each child,
	// each reconcile.
	scopes sync.Map // schema.GroupVersionKind → bool
}

// NewApplier returns an Applier that reads children through children (a
// client whose reads come from a cache of owner-labelled objects, with
// unstructured caching on) and fresh objects through api.
func NewApplier(children client.Client, api client.Reader) *Applier {
	return &Applier{
		children:  children,
		api:       api,
		recreator: ssa.NewResourceManager(uidGuarded{Client: children, api: api}, nil, ssa.Owner{Field: child.FieldManager, Group: "cuerator.dev"}),
	}
}

// Request is one CR's desired children.
type Request struct {
	Owner   child.Owner
	Objects []*unstructured.Unstructured
	// Previous is the inventory recorded in the CR's status.
	Previous child.Inventory
	// Declared are the kinds the template may produce: an inventory entry
	// of another kind, or in another namespace than a namespaced owner's,
	// names nothing the owner may have made, and is never pruned.
	Declared []schema.GroupVersionKind
	// ChildKinds are the declared kinds that are watched. Children of those
	// kinds that carry the owner's labels but that no inventory names (an
	// operator stopped between creating them and recording them) are found
	// through the cache and pruned like recorded ones.
	ChildKinds []schema.GroupVersionKind
	// ReportDrift leaves outside changes in place and only reports them.
	ReportDrift bool
	// NoPrune keeps stale children, and their inventory entries, as they
	// are: while another operator process reconciles the CR too, what this
	// one does not render may be that one's; while some children wait for
	// others, what they will be is not known yet.
	NoPrune bool
	// Held are children rendered but not applied now: they wait for
	// others to be ready. What they are live stays as it is, and recorded.
	Held []*unstructured.Unstructured
	// Fields are the field rules of children, by inventory ID.
	Fields map[string]child.FieldRules
}

// Action is a write to a child, in the vocabulary the operator's events and
// the preview share.
type Action string

const (
	ActionCreate    Action = "create"
	ActionConfigure Action = "configure"
	ActionRecreate  Action = "recreate"
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
	// Inventory is what the CR owns now, with each child's digests, to
	// record in its status.
	Inventory child.Inventory
	// Orphans is set when a child's policy is Orphan (the template's, or a
	// user's on the live child): deleting the CR must release it.
	Orphans bool
	// Lives are the children as this apply last read or wrote them, by
	// inventory ID: the cache's object when it was left as it was, the
	// API server's response when it was written. Their health is read
	// from them (Health), with no read of the cache again.
	Lives map[string]*unstructured.Unstructured
}

// saw records live as child id's live state.
func (r *Result) saw(id string, live *unstructured.Unstructured) {
	if r.Lives == nil {
		r.Lives = map[string]*unstructured.Unstructured{}
	}
	r.Lives[id] = live
}

// Err joins the failures.
func (r *Result) Err() error {
	errs := make([]error, len(r.Failed))
	for i, f := range r.Failed {
		errs[i] = f
	}
	return errors.Join(errs...)
}

// Permanent reports whether every failure is one a retry cannot fix: the
// API server refused the child as invalid (a bad field, an immutable one),
// and will refuse it again until the CR or the template changes.
func (r *Result) Permanent() bool {
	for _, f := range r.Failed {
		var missing *MissingError
		if !apierrors.IsInvalid(f) && !errors.As(f, &missing) {
			return false
		}
	}
	return len(r.Failed) > 0
}

// Forget drops what the Applier remembers of a deleted CR's children.
func (a *Applier) Forget(owner types.NamespacedName) { a.memory.forget(owner) }

// uidGuarded reads through api and deletes only the object it read: the
// ResourceManager deletes an object it found to re-create it, and a UID
// precondition makes sure that is the very object.
type uidGuarded struct {
	client.Client
	api client.Reader
}

func (c uidGuarded) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.api.Get(ctx, key, obj, opts...)
}

func (c uidGuarded) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	uid := obj.GetUID()
	if uid == "" {
		return apierrors.NewBadRequest("refusing to delete " + obj.GetName() + " without knowing its uid")
	}
	return c.Client.Delete(ctx, obj, append(opts, client.Preconditions{UID: &uid})...)
}
