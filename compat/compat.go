// Package compat finds the breaking changes between two versions of a
// template module: what a CR valid under the old version may no longer be
// under the new one. It compares the kinds' generated CRDs, which state
// what the API server admits, so it knows CUE through crdgen and the CRD
// format, and nothing of the cluster.
package compat

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// Change is one breaking change.
type Change struct {
	// Kind is the kind's name (WebApp).
	Kind string
	// Path is the CR field, as cue vet names it (spec.replicas,
	// spec.ports[].name, spec.limits[*].max); "" for the kind itself.
	Path string
	// What says what changed and what it breaks.
	What string
}

func (c Change) String() string {
	if c.Path == "" {
		return c.Kind + ": " + c.What
	}
	return c.Kind + " " + c.Path + ": " + c.What
}

// Breaking lists what changes from old to new that a CR valid under old
// may not survive: a kind, version or field removed, a type changed, a new
// required field without a default, a bound, enum or pattern tightened, a
// new validation rule (immutability included), or a constraint the CRD
// cannot check. Loosened constraints, new optional or defaulted fields and
// new kinds are not breaking and are not listed.
func Breaking(old, new *render.Library) ([]Change, error) {
	newKinds := map[schema.GroupKind]*render.Kind{}
	for _, k := range new.Kinds() {
		newKinds[k.GVK.GroupKind()] = k
	}
	var out []Change
	for _, o := range old.Kinds() {
		n := newKinds[o.GVK.GroupKind()]
		kind := o.GVK.Kind
		if n == nil {
			out = append(out, Change{Kind: kind, What: fmt.Sprintf("the kind (%s) is removed: the operator would no longer serve its CRs", o.GVK.GroupKind())})
			continue
		}
		out = append(out, removedVersions(o, n)...)
		if o.Namespaced != n.Namespaced {
			out = append(out, Change{Kind: kind, What: "the scope changes: the API server cannot move existing CRs between namespaced and cluster scope"})
		}
		if o.Plural != n.Plural {
			out = append(out, Change{Kind: kind, What: fmt.Sprintf("the plural changes from %s to %s: that renames the CRD and its resource", o.Plural, n.Plural)})
		}
		oldCRD, oldWarnings, err := crdgen.GenerateWithWarnings(o)
		if err != nil {
			return nil, fmt.Errorf("the old templates: %w", err)
		}
		newCRD, newWarnings, err := crdgen.GenerateWithWarnings(n)
		if err != nil {
			return nil, fmt.Errorf("the new templates: %w", err)
		}
		// Each version served before and after is compared with itself: a
		// new version is not breaking, what a served version stops
		// admitting is. A CR keeps the version its client wrote.
		for _, ov := range oldCRD.Spec.Versions {
			nv := versionNamed(newCRD, ov.Name)
			if nv == nil || !nv.Served || !ov.Served {
				continue
			}
			c := &comparison{kind: kind}
			if len(oldCRD.Spec.Versions) > 1 || len(newCRD.Spec.Versions) > 1 {
				c.kind = kind + " " + ov.Name
			}
			oldRoot, newRoot := ov.Schema.OpenAPIV3Schema, nv.Schema.OpenAPIV3Schema
			c.rules("metadata.name", oldRoot.XValidations, newRoot.XValidations)
			c.schema("spec", oldRoot.Properties["spec"], newRoot.Properties["spec"])
			c.unchecked(versionWarnings(ov.Name, o, oldWarnings), versionWarnings(ov.Name, n, newWarnings))
			out = append(out, c.changes...)
		}
	}
	return out, nil
}

// removedVersions lists the versions old serves and new does not. One
// that old stores holds every CR written under it: the API server refuses
// a CRD without it until the CRs are rewritten in another version (a
// storage migration: the new version first, as storage, then cuerator
// migrate) and status.storedVersions no longer lists it.
func removedVersions(o, n *render.Kind) []Change {
	var out []Change
	for _, ov := range o.Versions {
		if !ov.Served {
			continue
		}
		nv := n.Version(ov.Name)
		switch {
		case nv != nil && nv.Served:
			continue
		case ov.Name == o.StorageVersion:
			out = append(out, Change{Kind: o.GVK.Kind, What: fmt.Sprintf("version %s is removed, and the CRs are stored in it: the API server refuses the CRD while status.storedVersions lists %s, and clients of %s would not be served; serve it with the new version (%s), migrate the storage (cuerator migrate), then remove it", ov.Name, ov.Name, ov.Name, n.GVK.Version)})
		case nv != nil:
			out = append(out, Change{Kind: o.GVK.Kind, What: fmt.Sprintf("version %s is no longer served: its clients (manifests written for it) would be refused", ov.Name)})
		default:
			out = append(out, Change{Kind: o.GVK.Kind, What: fmt.Sprintf("version %s is removed (the new one is %s): clients and CRs stored in %s would not be served", ov.Name, n.GVK.Version, ov.Name)})
		}
	}
	return out
}

func versionNamed(crd *apiextensionsv1.CustomResourceDefinition, name string) *apiextensionsv1.CustomResourceDefinitionVersion {
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == name {
			return &crd.Spec.Versions[i]
		}
	}
	return nil
}

// versionWarnings are the warnings of one version of k: crdgen prefixes
// those of a version other than the template's with its name.
func versionWarnings(version string, k *render.Kind, all []crdgen.Warning) []crdgen.Warning {
	var out []crdgen.Warning
	for _, w := range all {
		rest, other := strings.CutPrefix(w.Path, version+" ")
		switch {
		case version == k.GVK.Version && !strings.Contains(w.Path, " "):
			out = append(out, w)
		case version != k.GVK.Version && other:
			out = append(out, crdgen.Warning{Path: rest, Message: w.Message})
		}
	}
	return out
}

// comparison collects the breaking changes of one kind's schema.
type comparison struct {
	kind    string
	changes []Change
}

func (c *comparison) add(path, format string, args ...any) {
	c.changes = append(c.changes, Change{Kind: c.kind, Path: path, What: fmt.Sprintf(format, args...)})
}

// schema compares the schema of the field at path; what old admits, new
// must admit too.
func (c *comparison) schema(path string, o, n apiextensionsv1.JSONSchemaProps) {
	if typeOf(n) == "any" {
		return // anything goes now
	}
	if ot, nt := typeOf(o), typeOf(n); ot != nt && !(nt == "int-or-string" && (ot == "string" || ot == "integer")) {
		c.add(path, "the type changes from %s to %s", ot, nt)
		return
	}
	if o.Nullable && !n.Nullable {
		c.add(path, "null is no longer accepted")
	}
	c.bounds(path, o, n)
	c.enum(path, o, n)
	if n.Pattern != "" && n.Pattern != o.Pattern {
		c.add(path, "the pattern changes to %q (from %q): a value the old one accepts may be refused", n.Pattern, o.Pattern)
	}
	if n.Format != "" && n.Format != o.Format {
		c.add(path, "the format changes to %s", n.Format)
	}
	if n.Not != nil && !reflect.DeepEqual(o.Not, n.Not) || len(n.AllOf) > len(o.AllOf) {
		c.add(path, "a new exclusion (!= or !~) refuses values the old schema accepts")
	}
	if n.XListType != nil && *n.XListType == "set" && (o.XListType == nil || *o.XListType != "set") {
		c.add(path, "the list's items must now be unique")
	}
	c.rules(path, o.XValidations, n.XValidations)

	if preserves(o) && !preserves(n) {
		c.add(path, "unknown fields are no longer kept: the API server would prune them")
	}
	for _, name := range sortedKeys(o.Properties) {
		childPath := path + "." + name
		np, ok := n.Properties[name]
		if !ok {
			if !preserves(n) {
				c.add(childPath, "the field is removed: a CR that sets it would be refused")
			}
			continue
		}
		if slices.Contains(n.Required, name) && !slices.Contains(o.Required, name) {
			c.add(childPath, "the field is now required: a CR without it would be refused")
		}
		c.schema(childPath, o.Properties[name], np)
	}
	for _, name := range n.Required {
		if _, existed := o.Properties[name]; !existed {
			c.add(path+"."+name, "a new required field without a default: every existing CR lacks it")
		}
	}
	if o.Items != nil && o.Items.Schema != nil && n.Items != nil && n.Items.Schema != nil {
		c.schema(path+"[]", *o.Items.Schema, *n.Items.Schema)
	}
	if o.AdditionalProperties != nil && o.AdditionalProperties.Schema != nil {
		if n.AdditionalProperties == nil || n.AdditionalProperties.Schema == nil {
			c.add(path, "the map's keys are no longer free: only the fields the schema names are kept")
		} else {
			c.schema(path+"[*]", *o.AdditionalProperties.Schema, *n.AdditionalProperties.Schema)
		}
	}
}

// typeOf is a schema's type as a word: string, integer, int-or-string...
func typeOf(s apiextensionsv1.JSONSchemaProps) string {
	switch {
	case s.XIntOrString:
		return "int-or-string"
	case s.Type == "object" && s.AdditionalProperties != nil:
		return "map"
	case s.Type == "":
		return "any"
	}
	return s.Type
}

func preserves(s apiextensionsv1.JSONSchemaProps) bool {
	return s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields || s.Type == ""
}

// bounds reports every bound that admits less than it did.
func (c *comparison) bounds(path string, o, n apiextensionsv1.JSONSchemaProps) {
	bound := func(f *float64, op string) string {
		if f == nil {
			return "none"
		}
		return fmt.Sprintf("%s%v", op, *f)
	}
	if n.Minimum != nil && (o.Minimum == nil || *n.Minimum > *o.Minimum || *n.Minimum == *o.Minimum && n.ExclusiveMinimum && !o.ExclusiveMinimum) {
		c.add(path, "the minimum is raised from %s to %s", bound(o.Minimum, minOp(o)), bound(n.Minimum, minOp(n)))
	}
	if n.Maximum != nil && (o.Maximum == nil || *n.Maximum < *o.Maximum || *n.Maximum == *o.Maximum && n.ExclusiveMaximum && !o.ExclusiveMaximum) {
		c.add(path, "the maximum is lowered from %s to %s", bound(o.Maximum, maxOp(o)), bound(n.Maximum, maxOp(n)))
	}
	for _, b := range []struct {
		name     string
		old, new *int64
		lower    bool // a lower bound: raising it tightens
	}{
		{"minLength", o.MinLength, n.MinLength, true},
		{"maxLength", o.MaxLength, n.MaxLength, false},
		{"minItems", o.MinItems, n.MinItems, true},
		{"maxItems", o.MaxItems, n.MaxItems, false},
		{"minProperties", o.MinProperties, n.MinProperties, true},
		{"maxProperties", o.MaxProperties, n.MaxProperties, false},
	} {
		if b.new == nil || b.old != nil && (b.lower && *b.new <= *b.old || !b.lower && *b.new >= *b.old) {
			continue
		}
		was := "none"
		if b.old != nil {
			was = fmt.Sprint(*b.old)
		}
		c.add(path, "%s tightens from %s to %d", b.name, was, *b.new)
	}
}

// enum reports values the old enum (or no enum) admitted and the new one
// does not.
func (c *comparison) enum(path string, o, n apiextensionsv1.JSONSchemaProps) {
	if len(n.Enum) == 0 {
		return
	}
	if len(o.Enum) == 0 {
		c.add(path, "the value is now limited to %s", enumText(n.Enum))
		return
	}
	var removed []apiextensionsv1.JSON
	for _, ov := range o.Enum {
		if !slices.ContainsFunc(n.Enum, func(nv apiextensionsv1.JSON) bool { return bytes.Equal(ov.Raw, nv.Raw) }) {
			removed = append(removed, ov)
		}
	}
	if len(removed) > 0 {
		c.add(path, "the enum no longer admits %s", enumText(removed))
	}
}

func enumText(vals []apiextensionsv1.JSON) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = string(v.Raw)
	}
	return strings.Join(parts, ", ")
}

// rules reports validation rules new has and old has not: each may refuse
// a CR the old CRD admits, or, with oldSelf, an update it allows.
func (c *comparison) rules(path string, o, n []apiextensionsv1.ValidationRule) {
	for _, r := range n {
		if slices.ContainsFunc(o, func(or apiextensionsv1.ValidationRule) bool { return or.Rule == r.Rule }) {
			continue
		}
		if strings.Contains(r.Rule, "oldSelf") {
			c.add(path, "a new rule on updates: %s", r.Message)
			continue
		}
		c.add(path, "a new rule: %s", r.Message)
	}
}

// unchecked reports constraints the new CRD cannot check (crdgen warns of
// them) that the old templates did not have: whether they admit every old
// value is unknown, until a preflight renders the live CRs.
func (c *comparison) unchecked(o, n []crdgen.Warning) {
	for _, w := range n {
		if !strings.Contains(w.Message, "not checked at admission") || slices.Contains(o, w) {
			continue
		}
		c.add(w.Path, "%s, and may refuse CRs the old templates accept: run the preflight", strings.TrimSuffix(w.Message, "; cuerator and cue vet check it"))
	}
}

func minOp(s apiextensionsv1.JSONSchemaProps) string {
	if s.ExclusiveMinimum {
		return ">"
	}
	return ">="
}

func maxOp(s apiextensionsv1.JSONSchemaProps) string {
	if s.ExclusiveMaximum {
		return "<"
	}
	return "<="
}

func sortedKeys(m map[string]apiextensionsv1.JSONSchemaProps) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
