package child

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldManager is the server-side apply field manager of every write.
const FieldManager = "cuerator"

// FieldManagerInitial writes the fields a template sets when a child is
// created and leaves to others afterwards (graph.<key>.leave): it never
// writes them again, so an autoscaler that changes them takes them over.
const FieldManagerInitial = "cuerator-initial"

// FieldRules say how cuerator treats some fields of one child, by dotted
// path from the object's root ("spec.replicas").
type FieldRules struct {
	// Leave are set when the child is created and left to others after:
	// cuerator never applies them again (an autoscaler's replicas). They
	// are handed over to FieldManagerInitial, so that cuerator's later
	// applies, which leave them out, do not remove them.
	Leave []string
	// IgnoreDrift may be changed by others without cuerator changing them
	// back: they count for no drift, and an apply carries their live value.
	IgnoreDrift []string
}

// Labels cuerator puts on every child, so that a child names its CR even
// when it has no ownerReference (offline renders, children kept without one).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelOwnerName = "cuerator.dev/owner-name"
	LabelOwnerKind = "cuerator.dev/owner-kind"
	ManagedByValue = "cuerator"
	// AnnotationOwnerName holds the CR's whole name on the children of a CR
	// whose name is too long for a label value.
	AnnotationOwnerName = "cuerator.dev/owner-name"
)

// maxLabelValue is the longest label value the API server accepts.
const maxLabelValue = 63

// NameLabel is the value of LabelOwnerName for a CR named name: the name
// itself when it fits in a label value (63 characters), else its first 46
// characters and a hash of the whole, so that the label stays valid and
// still tells CRs apart. The children of such a CR also carry
// AnnotationOwnerName.
func NameLabel(name string) string {
	if len(name) <= maxLabelValue {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	head := strings.TrimRight(name[:46], "-.")
	return head + "-" + hex.EncodeToString(sum[:8])
}

// KindLabelError says why the kind's children could not carry gvk's owner
// kind label, or returns nil when they can.
func KindLabelError(gvk schema.GroupVersionKind) error {
	if msgs := validation.IsValidLabelValue(KindLabel(gvk)); len(msgs) > 0 {
		return fmt.Errorf("kind and group %q make the owner label of every child, which must be a label value: %s", KindLabel(gvk), strings.Join(msgs, "; "))
	}
	return nil
}

// Owner identifies the CR a child belongs to.
type Owner struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	// UID is empty for an offline render, which then sets no ownerReference.
	UID types.UID
}

// OwnerOf returns the identity of cr, a CR of kind gvk.
func OwnerOf(cr metav1.Object, gvk schema.GroupVersionKind) Owner {
	return Owner{GVK: gvk, Namespace: cr.GetNamespace(), Name: cr.GetName(), UID: cr.GetUID()}
}

// Key is the owner's namespaced name.
func (o Owner) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
}

// KindLabel is the value of LabelOwnerKind on the children of a kind.
func KindLabel(gvk schema.GroupVersionKind) string {
	return strings.ToLower(gvk.Kind + "." + gvk.Group)
}

// Labels are the labels that mark a child as this owner's.
func (o Owner) Labels() map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelOwnerName: NameLabel(o.Name),
		LabelOwnerKind: KindLabel(o.GVK),
	}
}

// IndexKey is the key of the owner's children in a cache index by owner.
func (o Owner) IndexKey() string { return KindLabel(o.GVK) + "/" + NameLabel(o.Name) }

// HasOwnerLabels reports whether obj carries this owner's labels in the
// owner's namespace. Labels alone name an owner; they do not prove one.
func (o Owner) HasOwnerLabels(obj metav1.Object) bool {
	l := obj.GetLabels()
	if l[LabelOwnerKind] != KindLabel(o.GVK) || l[LabelOwnerName] != NameLabel(o.Name) || obj.GetNamespace() != o.Namespace {
		return false
	}
	// A hashed name label could in theory be another name's: the
	// annotation holds the whole name.
	full, ok := obj.GetAnnotations()[AnnotationOwnerName]
	return !ok || full == o.Name
}

// Reference is the controller ownerReference a child of this owner carries
// when the garbage collector may delete it with the CR.
func (o Owner) Reference() metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         o.GVK.GroupVersion().String(),
		Kind:               o.GVK.Kind,
		Name:               o.Name,
		UID:                o.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

// OwnerNamed returns the CR that obj names in its owner labels, when they
// name a CR of kind gvk. namespaced says whether that kind is namespaced.
func OwnerNamed(obj metav1.Object, gvk schema.GroupVersionKind, namespaced bool) (types.NamespacedName, bool) {
	l := obj.GetLabels()
	if l[LabelOwnerKind] != KindLabel(gvk) || l[LabelOwnerName] == "" {
		return types.NamespacedName{}, false
	}
	ns := obj.GetNamespace()
	if !namespaced {
		ns = ""
	}
	name := l[LabelOwnerName]
	if full, ok := obj.GetAnnotations()[AnnotationOwnerName]; ok {
		name = full
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

// Describe names obj in messages, events and the inventory's readers:
// Kind/namespace/name, or Kind/name for a cluster-scoped object.
func Describe(obj interface {
	metav1.Object
	GetKind() string
}) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + "/" + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + "/" + obj.GetName()
}

// Stamp marks obj, a rendered child, as owner's: the owner labels, and the
// controller ownerReference when its policy lets the garbage collector
// delete it with the CR (Orphan and Retain children must outlive it) and
// the owner has a UID (offline renders have none).
func Stamp(obj interface {
	metav1.Object
	GroupVersionKind() schema.GroupVersionKind
}, owner Owner) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range owner.Labels() {
		labels[k] = v
	}
	obj.SetLabels(labels)
	if NameLabel(owner.Name) != owner.Name {
		annotations := obj.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[AnnotationOwnerName] = owner.Name
		obj.SetAnnotations(annotations)
	}
	if owner.UID != "" && PolicyOf(obj, obj.GroupVersionKind().GroupKind()) == PruneDelete {
		obj.SetOwnerReferences([]metav1.OwnerReference{owner.Reference()})
	}
}

// Unstamp removes what Stamp added, so that no CR claims obj any more: the
// owner labels and the ownerReferences.
func Unstamp(obj metav1.Object) {
	labels := obj.GetLabels()
	delete(labels, LabelManagedBy)
	delete(labels, LabelOwnerName)
	delete(labels, LabelOwnerKind)
	obj.SetLabels(labels)
	if annotations := obj.GetAnnotations(); annotations != nil {
		delete(annotations, AnnotationOwnerName)
		obj.SetAnnotations(annotations)
	}
	obj.SetOwnerReferences(nil)
}
