package engine

import (
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Annotations a template (on a child) or a user (on a live object) sets.
const (
	// AnnotationApply "create-only": create the child once, never update it
	// (a generated password stays as it was first written).
	AnnotationApply = "cuerator.dev/apply"
	// AnnotationPrune sets a child's policy when it is pruned or its CR is
	// deleted: Delete, Orphan or Retain.
	AnnotationPrune = "cuerator.dev/prune"
	// AnnotationAdopt "true" on a live object lets a CR take it over.
	AnnotationAdopt = "cuerator.dev/adopt"
	// AnnotationRecreate "true" on a child lets cuerator delete and create it
	// again when a change touches an immutable field.
	AnnotationRecreate = "cuerator.dev/recreate"
	// AnnotationDrift on a CR: "report" leaves outside changes in place and
	// reports them; the default, "correct", undoes them.
	AnnotationDrift = "cuerator.dev/drift"
)

// PrunePolicy says what happens to a child that its CR no longer produces,
// or whose CR is deleted.
type PrunePolicy string

const (
	// PruneDelete deletes it; the child carries an ownerReference, so the
	// garbage collector deletes it with its CR.
	PruneDelete PrunePolicy = "Delete"
	// PruneOrphan leaves it and removes cuerator's labels from it.
	PruneOrphan PrunePolicy = "Orphan"
	// PruneRetain leaves it as it is.
	PruneRetain PrunePolicy = "Retain"
)

// prunePolicy reads a child's policy. PersistentVolumeClaims are retained
// unless told otherwise: their data outlives a template change.
func prunePolicy(obj *unstructured.Unstructured) PrunePolicy {
	switch p := PrunePolicy(obj.GetAnnotations()[AnnotationPrune]); p {
	case PruneDelete, PruneOrphan, PruneRetain:
		return p
	}
	if obj.GetKind() == "PersistentVolumeClaim" && obj.GroupVersionKind().Group == "" {
		return PruneRetain
	}
	return PruneDelete
}

// ownedBy reports whether live belongs to cr: its controller reference
// names cr's UID, or, for children kept without one (Orphan, Retain), it
// carries cr's owner labels and no other controller.
func ownedBy(live, cr *unstructured.Unstructured, kind *Kind) bool {
	for _, ref := range live.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.UID == cr.GetUID()
		}
	}
	l := live.GetLabels()
	return l[LabelOwnerKind] == kind.ownerLabel() && l[LabelOwnerName] == cr.GetName() && live.GetNamespace() == cr.GetNamespace()
}

// currentOwner describes who holds live: its controller, else the field
// managers that wrote it.
func currentOwner(live *unstructured.Unstructured) string {
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
		return "unknown"
	}
	return "field managers " + strings.Join(managers, ", ")
}
