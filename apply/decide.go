package apply

import (
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/child"
)

// The decisions of this file are pure: they look at a desired child, the
// live object and the owner, and say what to do. The operator (Apply,
// prune) and the preview (cuerator diff) both call them, so a preview
// shows exactly what the operator would do.

// Step is what a reconcile does with one rendered child.
type Step string

const (
	// StepCreate: the child does not exist; create it.
	StepCreate Step = "create"
	// StepApply: the child is the CR's; bring it to the desired state.
	StepApply Step = "apply"
	// StepKeep: the child is the CR's and create-only; never updated.
	StepKeep Step = "keep"
	// StepRefuse: the object exists and is someone else's; leave it alone.
	StepRefuse Step = "refuse"
)

// Decide says what to do with desired, given live (nil when absent).
func Decide(desired, live *unstructured.Unstructured, owner child.Owner) Step {
	switch {
	case live == nil:
		return StepCreate
	case !ownedBy(live, owner) && !child.AdoptionAllowed(live):
		return StepRefuse
	case child.CreateOnly(desired):
		return StepKeep
	}
	return StepApply
}

// Desired is what to apply for desired over live: desired itself, but
//   - without its controller reference when a user marked the live child
//     Retain or Orphan: such a child must outlive its CR, and the garbage
//     collector deletes whatever names the deleted CR as its controller;
//   - without the fields the template leaves to others once the child
//     exists (rules.Leave);
//   - with the live values of the fields whose drift is ignored
//     (rules.IgnoreDrift).
func Desired(desired, live *unstructured.Unstructured, rules child.FieldRules) *unstructured.Unstructured {
	if live == nil {
		return desired
	}
	out := desired
	if len(desired.GetOwnerReferences()) > 0 {
		switch child.PrunePolicy(live.GetAnnotations()[child.AnnotationPrune]) {
		case child.PruneRetain, child.PruneOrphan:
			out = desired.DeepCopy()
			out.SetOwnerReferences(nil)
		}
	}
	out = without(out, rules.Leave)
	return withLiveValues(out, live, rules.IgnoreDrift)
}

// ownedUntilRecorded is how to create desired: with the owner's controller
// reference even when its policy keeps it without one (Retain, Orphan), so
// that a child created for a CR deleted meanwhile goes with it (the garbage
// collector deletes what names a missing owner). What is remembered is what
// was created, so the next apply, once the CR's status has recorded the
// child, takes the reference off.
func ownedUntilRecorded(desired *unstructured.Unstructured, owner child.Owner) *unstructured.Unstructured {
	if owner.UID == "" || len(desired.GetOwnerReferences()) > 0 {
		return desired
	}
	out := desired.DeepCopy()
	out.SetOwnerReferences([]metav1.OwnerReference{owner.Reference()})
	return out
}

// mayHaveMade keeps the entries of inv that name something req's owner may
// have made: a kind its template declares, in its namespace. An inventory
// is status, which anyone allowed to write status can change; an entry
// naming anything else is dropped, never acted on.
func mayHaveMade(req Request, inv child.Inventory) child.Inventory {
	declared := map[schema.GroupKind]bool{}
	for _, gvk := range req.Declared {
		declared[gvk.GroupKind()] = true
	}
	var out child.Inventory
	for _, e := range inv {
		stub, err := e.Object()
		if err != nil || !declared[stub.GroupVersionKind().GroupKind()] {
			continue
		}
		if req.Owner.Namespace != "" && stub.GetNamespace() != req.Owner.Namespace {
			continue
		}
		out = append(out, e)
	}
	return out
}

// PruneStep is what pruning does with a stale child: one that the CR's
// inventory lists and its render no longer produces.
type PruneStep string

const (
	// PruneSkip: not the CR's to touch (someone else's, or a kind never
	// deleted); it leaves the inventory.
	PruneSkip PruneStep = "skip"
	// PruneKeep: the CR's, kept as it is (Retain).
	PruneKeep PruneStep = "retain"
	// PruneRelease: kept, without cuerator's labels and reference (Orphan).
	PruneRelease PruneStep = "orphan"
	// PruneRemove: deleted.
	PruneRemove PruneStep = "delete"
)

// DecidePrune says what to do with live, a stale child of owner.
func DecidePrune(live *unstructured.Unstructured, owner child.Owner) PruneStep {
	gk := live.GroupVersionKind().GroupKind()
	if child.NeverDeleted(gk) || !ownedBy(live, owner) {
		return PruneSkip
	}
	switch child.PolicyOf(live, gk) {
	case child.PruneRetain:
		return PruneKeep
	case child.PruneOrphan:
		return PruneRelease
	}
	return PruneRemove
}

// ownedBy reports whether live belongs to owner: its controller reference
// names owner's UID, or, for children kept without one (Orphan, Retain,
// children of a CR deleted and created again), it carries owner's labels,
// no other controller, and evidence that cuerator wrote it or was handed it:
// cuerator among its field managers, or the adopt annotation. Labels alone
// prove nothing: anyone who may patch an object can set them.
func ownedBy(live *unstructured.Unstructured, owner child.Owner) bool {
	for _, ref := range live.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.UID == owner.UID
		}
	}
	return owner.HasOwnerLabels(live) && (writtenBy(live, child.FieldManager) || child.AdoptionAllowed(live))
}

// writtenBy reports whether manager is among live's field managers.
func writtenBy(live *unstructured.Unstructured, manager string) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == manager {
			return true
		}
	}
	return false
}

// recreateSelector is the ssa ForceSelector that lets a child be deleted
// and created again when an immutable field changes: only when it asks for
// it, and never for kinds whose data would be lost.
func recreateSelector(obj *unstructured.Unstructured) map[string]string {
	if child.NeverRecreated(obj.GroupVersionKind().GroupKind()) || !child.RecreateAllowed(obj) {
		return nil
	}
	return map[string]string{child.AnnotationRecreate: "true"}
}

// CurrentOwner describes who holds live: its controller, else the field
// managers that wrote it.
func CurrentOwner(live *unstructured.Unstructured) string {
	for _, ref := range live.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.Kind + "/" + ref.Name
		}
	}
	var managers []string
	seen := map[string]bool{}
	for _, mf := range live.GetManagedFields() {
		if !seen[mf.Manager] {
			seen[mf.Manager] = true
			managers = append(managers, mf.Manager)
		}
	}
	sort.Strings(managers)
	if len(managers) == 0 {
		return unknownOwner
	}
	return "field managers " + strings.Join(managers, ", ")
}

const unknownOwner = "unknown"
