package child

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	// AnnotationNeededBy "<apiVersion>/<Kind>/<name>" on a create-only child
	// names an object in the CR's namespace that holds data made with the
	// child's first value (the volume a database was initialised with its
	// password): while that object exists, the child is never created anew.
	AnnotationNeededBy = "cuerator.dev/needed-by"
	// AnnotationSuspend "true" on a CR stops its reconciles: nothing is
	// applied, corrected or pruned until it is removed.
	AnnotationSuspend = "cuerator.dev/suspend"
)

// FinalizerRelease is on a CR that has a child with policy Orphan: when the
// CR is deleted, the operator takes its labels off such children first, so
// that they outlive it unclaimed.
const FinalizerRelease = "cuerator.dev/release-orphans"

// FinalizerDeleteInOrder is on a CR whose template deletes its children in
// order (deleteInOrder): when the CR is deleted, the operator deletes them
// stage by stage before the garbage collector takes the rest.
const FinalizerDeleteInOrder = "cuerator.dev/delete-in-order"

// Values of the annotations above.
const (
	ApplyCreateOnly = "create-only"
	DriftReport     = "report"
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

// retainedByDefault are the kinds kept when pruned unless annotated
// otherwise: their data outlives a template change.
var retainedByDefault = map[schema.GroupKind]bool{
	{Kind: "PersistentVolumeClaim"}: true,
}

// neverDeleted are the kinds cuerator never deletes, whatever the policy:
// too much would go with them.
var neverDeleted = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true,
}

// neverRecreated are the kinds never deleted to change an immutable field,
// whatever the annotation says: their data would be lost (a claim's volume,
// a StatefulSet's claims), or everything in them (a Namespace, a CRD).
var neverRecreated = map[schema.GroupKind]bool{
	{Kind: "PersistentVolumeClaim"}:                                   true,
	{Group: "apps", Kind: "StatefulSet"}:                              true,
	{Kind: "Namespace"}:                                               true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true,
}

// PolicyOf reads the prune policy of obj (a rendered child or a live one)
// from its annotation, or the kind's default.
func PolicyOf(obj metav1.Object, gk schema.GroupKind) PrunePolicy {
	switch p := PrunePolicy(obj.GetAnnotations()[AnnotationPrune]); p {
	case PruneDelete, PruneOrphan, PruneRetain:
		return p
	}
	if retainedByDefault[gk] {
		return PruneRetain
	}
	return PruneDelete
}

// NeverDeleted reports whether objects of gk are never deleted by cuerator.
func NeverDeleted(gk schema.GroupKind) bool { return neverDeleted[gk] }

// NeverRecreated reports whether objects of gk are never deleted and
// created again to change an immutable field.
func NeverRecreated(gk schema.GroupKind) bool { return neverRecreated[gk] }

// CreateOnly reports whether obj is created once and never updated.
func CreateOnly(obj metav1.Object) bool {
	return obj.GetAnnotations()[AnnotationApply] == ApplyCreateOnly
}

// AdoptionAllowed reports whether the user handed obj over to cuerator.
func AdoptionAllowed(obj metav1.Object) bool {
	return obj.GetAnnotations()[AnnotationAdopt] == "true"
}

// RecreateAllowed reports whether obj asks to be re-created when a change
// touches an immutable field.
func RecreateAllowed(obj metav1.Object) bool {
	return obj.GetAnnotations()[AnnotationRecreate] == "true"
}

// NeededBy returns a stub of the object obj's AnnotationNeededBy names, in
// namespace, or nil when it names none.
func NeededBy(obj metav1.Object, namespace string) (*unstructured.Unstructured, error) {
	ref, ok := obj.GetAnnotations()[AnnotationNeededBy]
	if !ok {
		return nil, nil
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 3 || len(parts) > 4 {
		return nil, fmt.Errorf("annotation %s: %q is not <apiVersion>/<Kind>/<name>", AnnotationNeededBy, ref)
	}
	n := len(parts)
	gv, err := schema.ParseGroupVersion(strings.Join(parts[:n-2], "/"))
	if err != nil || parts[n-2] == "" || parts[n-1] == "" {
		return nil, fmt.Errorf("annotation %s: %q is not <apiVersion>/<Kind>/<name>", AnnotationNeededBy, ref)
	}
	stub := &unstructured.Unstructured{}
	stub.SetGroupVersionKind(gv.WithKind(parts[n-2]))
	stub.SetNamespace(namespace)
	stub.SetName(parts[n-1])
	return stub, nil
}
