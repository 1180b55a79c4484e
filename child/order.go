package child

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// kindsFirst are applied before every other kind, in this order: what
// other objects refer to (definitions, namespaces, classes, identities,
// configuration) exists before what refers to it. It is the order
// fluxcd/pkg/ssa stages objects in, so a preview and the operator agree.
var kindsFirst = []string{
	"CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterClass",
	"RuntimeClass", "PriorityClass", "StorageClass", "VolumeSnapshotClass",
	"IngressClass", "GatewayClass", "ClusterRoleBinding", "ResourceQuota",
	"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "Service",
	"LimitRange", "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
}

// kindsLast are applied after every other kind: webhooks that could refuse
// the others.
var kindsLast = []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}

var kindRank = func() map[string]int {
	rank := map[string]int{}
	for i, k := range kindsFirst {
		rank[k] = i - len(kindsFirst)
	}
	for i, k := range kindsLast {
		rank[k] = i + 1
	}
	return rank
}()

// Object is what ordering needs of a child.
type Object interface {
	GroupVersionKind() schema.GroupVersionKind
	GetNamespace() string
	GetName() string
}

// AppliesBefore reports whether a is applied before b: by kind rank, then
// group and kind, then namespace and name, so the order is total and stable.
func AppliesBefore(a, b Object) bool {
	ga, gb := a.GroupVersionKind().GroupKind(), b.GroupVersionKind().GroupKind()
	if ga != gb {
		if ra, rb := kindRank[ga.Kind], kindRank[gb.Kind]; ra != rb {
			return ra < rb
		}
		if ga.Group != gb.Group {
			return ga.Group < gb.Group
		}
		return ga.Kind < gb.Kind
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}

// Stage is when a child is applied: every child of a stage after every child
// of the stages before it, the children of one stage together. Definitions
// come first (CustomResourceDefinitions, Namespaces, ClusterRoles), then
// classes (StorageClass, IngressClass, ...), then everything else.
func Stage(gk schema.GroupKind) int {
	switch {
	case gk == schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
		gk == schema.GroupKind{Kind: "Namespace"},
		gk == schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:
		return 0
	case strings.HasSuffix(gk.Kind, "Class"):
		return 1
	}
	return 2
}
