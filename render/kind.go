package render

import (
	"fmt"
	"slices"

	"cuelang.org/go/cue"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/child"
)

// Kind is one custom resource kind and the template that renders it.
type Kind struct {
	// Dir is the kind's directory in the template module.
	Dir string
	GVK schema.GroupVersionKind
	// Names and presentation for the CRD, from the api package's #CRD.
	Plural, Singular       string
	Namespaced             bool
	ShortNames, Categories []string
	PrinterColumns         []PrinterColumn
	// ChildKinds are the only kinds the template may produce: cuerator
	// watches them, is granted RBAC for them and refuses anything else.
	ChildKinds []schema.GroupVersionKind
	// InputKinds are the kinds the template may read as inputs: cuerator
	// watches them and reads only objects of these kinds.
	InputKinds []schema.GroupVersionKind

	// API is the api package: #Spec, #Status and #CRD.
	API cue.Value
	// Versions are the versions the CRD serves (versions.go), highest
	// priority first as Kubernetes orders them: GVK.Version, the one the
	// template renders, and those of #Versions.
	Versions []Version
	// StorageVersion is the version the API server stores.
	StorageVersion string
	conversions    map[conversionKey]cue.Value

	template cue.Value
	// usesRandom is set when the template reads `random`.
	usesRandom bool
	// keepsDigests is set when #Status lets inventory entries hold the
	// digests of what was applied (it embeds common.#Status, or is open).
	keepsDigests bool
	// keepsReconciler is set when #Status can name the process that wrote it.
	keepsReconciler bool
	// observed is what the template reads of its observed children.
	observed *observedUse
	// projection selects the status alone from the template filled beside
	// it (newProjection); nil when the template has no status of its own
	// at load (one only a comprehension adds).
	projection *projection
	// roleRules are the rules of the template's Roles (grants.go).
	roleRules []rbacv1.PolicyRule
	// env is how the kind renders: its library's budget and evaluator.
	env *environment
}

// PrinterColumn is an additional printer column of the CRD.
type PrinterColumn struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	JSONPath    string `json:"jsonPath"`
	Description string `json:"description,omitempty"`
	Priority    int32  `json:"priority,omitempty"`
}

// crdInfo is the shape of an api package's #CRD.
type crdInfo struct {
	Group          string          `json:"group"`
	Version        string          `json:"version"`
	StorageVersion string          `json:"storageVersion"`
	Kind           string          `json:"kind"`
	Plural         string          `json:"plural"`
	Singular       string          `json:"singular"`
	Scope          string          `json:"scope"`
	ShortNames     []string        `json:"shortNames"`
	Categories     []string        `json:"categories"`
	PrinterColumns []PrinterColumn `json:"printerColumns"`
}

type childKind struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func newKind(dir string, api, tmpl cue.Value) (*Kind, error) {
	var info crdInfo
	if err := api.LookupPath(cue.ParsePath("#CRD")).Decode(&info); err != nil {
		return nil, fmt.Errorf("api package: #CRD: %w", Diagnose(err))
	}
	for field, val := range map[string]string{"group": info.Group, "version": info.Version, "kind": info.Kind, "plural": info.Plural} {
		if val == "" {
			return nil, fmt.Errorf("api package: #CRD.%s must be set", field)
		}
	}
	if err := child.KindLabelError(schema.GroupVersionKind{Group: info.Group, Kind: info.Kind}); err != nil {
		return nil, fmt.Errorf("api package: #CRD: %w", err)
	}
	if info.Scope != "Namespaced" && info.Scope != "Cluster" {
		return nil, fmt.Errorf("api package: #CRD.scope must be Namespaced or Cluster, not %q", info.Scope)
	}
	for _, def := range []string{"#Spec", "#Status"} {
		if !api.LookupPath(cue.ParsePath(def)).Exists() {
			return nil, fmt.Errorf("api package: %s is not defined", def)
		}
	}
	for _, field := range []string{"cr", "objects", "childKinds"} {
		if !tmpl.LookupPath(cue.ParsePath(field)).Exists() {
			return nil, fmt.Errorf("template package: field %q is not defined", field)
		}
	}

	var children []childKind
	if err := tmpl.LookupPath(cue.ParsePath("childKinds")).Decode(&children); err != nil {
		return nil, fmt.Errorf("template package: childKinds (a list of {apiVersion, kind}): %w", Diagnose(err))
	}
	k := &Kind{
		Dir:             dir,
		GVK:             schema.GroupVersionKind{Group: info.Group, Version: info.Version, Kind: info.Kind},
		Plural:          info.Plural,
		Singular:        info.Singular,
		Namespaced:      info.Scope == "Namespaced",
		ShortNames:      info.ShortNames,
		Categories:      info.Categories,
		PrinterColumns:  info.PrinterColumns,
		API:             api,
		template:        tmpl,
		usesRandom:      tmpl.LookupPath(cue.ParsePath("random")).Exists(),
		keepsDigests:    acceptsStatus(api, map[string]any{"inventory": []any{map[string]any{"id": "ns_n__ConfigMap", "v": "v1", "d": "0", "m": "0"}}}),
		keepsReconciler: acceptsStatus(api, map[string]any{"reconciler": map[string]any{"id": "host-0", "templates": "0"}}),
	}
	if tmpl.LookupPath(pathStatus).Exists() {
		k.projection = newProjection(tmpl, k.usesRandom)
	}
	for _, c := range children {
		gv, err := schema.ParseGroupVersion(c.APIVersion)
		if err != nil || c.Kind == "" {
			return nil, fmt.Errorf("template package: childKinds: invalid entry %s %s", c.APIVersion, c.Kind)
		}
		k.ChildKinds = append(k.ChildKinds, gv.WithKind(c.Kind))
	}
	if v := tmpl.LookupPath(pathInputKinds); v.Exists() {
		var inputs []childKind
		if err := v.Decode(&inputs); err != nil {
			return nil, fmt.Errorf("template package: inputKinds (a list of {apiVersion, kind}): %w", Diagnose(err))
		}
		for _, c := range inputs {
			gv, err := schema.ParseGroupVersion(c.APIVersion)
			if err != nil || c.Kind == "" {
				return nil, fmt.Errorf("template package: inputKinds: invalid entry %s %s", c.APIVersion, c.Kind)
			}
			k.InputKinds = append(k.InputKinds, gv.WithKind(c.Kind))
		}
	}
	if err := k.loadVersions(info.StorageVersion); err != nil {
		return nil, err
	}
	return k, nil
}

// KeepsDigests reports whether the kind's status can hold, with each
// inventory entry, the digests that let a restarted operator know a child
// unchanged without a request. A #Status with an inventory shape of its own
// cannot: the API server would refuse the status.
func (k *Kind) KeepsDigests() bool { return k.keepsDigests }

// KeepsReconciler reports whether the kind's status can name the operator
// process that wrote it, by which two processes on one CR find each other.
func (k *Kind) KeepsReconciler() bool { return k.keepsReconciler }

// acceptsStatus reports whether st is a valid #Status of api.
func acceptsStatus(api cue.Value, st map[string]any) bool {
	return api.LookupPath(cue.ParsePath("#Status")).Unify(api.Context().Encode(st)).Validate(cue.Concrete(true)) == nil
}

// allowsChild reports whether the template declared gvk as a child kind.
func (k *Kind) allowsChild(gvk schema.GroupVersionKind) bool {
	return slices.Contains(k.ChildKinds, gvk)
}

// ObservesPods reports whether the template's status reads pods.
func (k *Kind) ObservesPods() bool {
	return k.template.LookupPath(pathObserve).Exists()
}

// Owner is the identity of cr as its children's owner. Their
// ownerReference names the version cr was read in, when it is one of the
// kind's: the version the API server serves to the controller, which the
// garbage collector can look the owner up in.
func (k *Kind) Owner(cr metav1.Object) child.Owner {
	if typed, ok := cr.(interface {
		GroupVersionKind() schema.GroupVersionKind
	}); ok {
		if gvk := typed.GroupVersionKind(); gvk.GroupKind() == k.GVK.GroupKind() && k.Version(gvk.Version) != nil {
			return child.OwnerOf(cr, gvk)
		}
	}
	return child.OwnerOf(cr, k.GVK)
}

// OwnerOf returns the CR that a child names in its owner labels. Every
// child carries them, those kept without an ownerReference included.
func (k *Kind) OwnerOf(obj metav1.Object) (types.NamespacedName, bool) {
	return child.OwnerNamed(obj, k.GVK, k.Namespaced)
}
