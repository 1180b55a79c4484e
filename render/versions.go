package render

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/version"
)

// A kind may serve several versions. Its api package declares them:
//
//	#CRD: {..., version: "v1beta1", storageVersion: "v1beta1"}
//	#Spec:   {...}   // the schema of #CRD.version, the version the template renders
//	#Status: {...}
//
//	// #Versions are the other versions the CRD serves, each with its schema.
//	#Versions: v1alpha1: {
//		#Spec:   {...}
//		#Status: #Status   // optional: the template version's by default
//		printerColumns: [...]   // optional: #CRD.printerColumns by default
//		deprecated: true        // optional, with deprecationWarning
//	}
//
//	// #Convert: FROM: TO: maps an object of one version to the other. cuerator
//	// fills `in` with the object's metadata (name, namespace, labels,
//	// annotations), spec and status, and reads `out`.
//	#Convert: v1alpha1: v1beta1: {in: {...}, out: {spec: {...}}}
//	#Convert: v1beta1: v1alpha1: {in: {...}, out: {spec: {...}}}
//
// The template's version is the hub: every other version converts to it
// and back, both directions declared, and a conversion between two other
// versions goes through it. The hub is what the operator reads (the API
// server converts each CR for it), so its controller and the children's
// owner labels do not depend on the version a client used. The storage
// version (#CRD.storageVersion, by default #CRD.version) is what etcd
// holds; one field names it, so a kind cannot declare two. `out.spec` is
// the converted spec; `out.status`, when the conversion gives none, is the
// input's status unchanged (most kinds share common.#Status across
// versions); `out.metadata.labels` and `out.metadata.annotations`, when
// given, replace the object's (the API server lets a conversion change
// nothing else of metadata): a field one version lacks travels in an
// annotation, as Kubernetes' own types keep lossy fields, so that a round
// trip gives the original back. Conversions are CUE like templates: they
// load with the template module (no tool packages, no module
// dependencies) and evaluate with no access to the network or the host.

// Version is one version of a kind's CRD.
type Version struct {
	Name string
	// Served is false for a version the API server only keeps for stored
	// objects (served: false in #Versions).
	Served             bool
	Deprecated         bool
	DeprecationWarning string
	// Spec and Status are the version's #Spec and #Status.
	Spec, Status   cue.Value
	PrinterColumns []PrinterColumn
	// input is `cr: spec: #Spec`, to check a CR of this version.
	input cue.Value
}

// versionInfo is the shape of an entry of #Versions, besides its
// definitions.
type versionInfo struct {
	Served             *bool            `json:"served"`
	Deprecated         bool             `json:"deprecated"`
	DeprecationWarning string           `json:"deprecationWarning"`
	PrinterColumns     *[]PrinterColumn `json:"printerColumns"`
}

var (
	pathVersions = cue.ParsePath("#Versions")
	pathConvert  = cue.ParsePath("#Convert")
	pathSpecDef  = cue.ParsePath("#Spec")
	pathStatDef  = cue.ParsePath("#Status")
	pathIn       = cue.ParsePath("in")
	pathOut      = cue.ParsePath("out")
	pathCRSpec   = cue.ParsePath("cr.spec")
)

// conversionKey is a pair of versions: from, to.
type conversionKey struct{ from, to string }

// loadVersions reads #Versions, #CRD.storageVersion and #Convert into k,
// whose GVK, API and PrinterColumns are set. A kind without #Versions has
// one version, the template's, which the API server stores.
func (k *Kind) loadVersions(storage string) error {
	hub := k.GVK.Version
	k.Versions = []Version{{
		Name: hub, Served: true,
		Spec: k.API.LookupPath(pathSpecDef), Status: k.API.LookupPath(pathStatDef),
		PrinterColumns: k.PrinterColumns,
	}}
	declared := k.API.LookupPath(pathVersions)
	if declared.Exists() {
		iter, err := declared.Fields(cue.Definitions(true))
		if err != nil {
			return fmt.Errorf("api package: #Versions: %w", Diagnose(err))
		}
		for iter.Next() {
			name := iter.Selector().String()
			v, err := k.versionOf(name, iter.Value())
			if err != nil {
				return err
			}
			k.Versions = append(k.Versions, v)
		}
	}
	slices.SortFunc(k.Versions, func(a, b Version) int { return version.CompareKubeAwareVersionStrings(b.Name, a.Name) })
	for i := range k.Versions {
		v := &k.Versions[i]
		v.input = k.API.Context().CompileString("{}").FillPath(pathCRSpec, v.Spec)
	}

	k.StorageVersion = hub
	if storage != "" {
		if k.Version(storage) == nil {
			return fmt.Errorf("api package: #CRD.storageVersion: %q is not a version of %s (%s)", storage, k.GVK.Kind, strings.Join(k.versionNames(), ", "))
		}
		k.StorageVersion = storage
	}
	return k.loadConversions()
}

func (k *Kind) versionOf(name string, entry cue.Value) (Version, error) {
	where := "api package: #Versions." + name
	if strings.HasPrefix(name, "#") || strings.HasPrefix(name, "_") {
		return Version{}, fmt.Errorf("%s: an entry of #Versions is a version name (v1alpha1), not a definition", where)
	}
	if name == k.GVK.Version {
		return Version{}, fmt.Errorf("%s: %s is #CRD.version, the version the template renders; its schema is #Spec and #Status, and #Versions lists the other versions", where, name)
	}
	if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
		return Version{}, fmt.Errorf("%s: not a version name (v1, v1beta1): %s", where, strings.Join(msgs, "; "))
	}
	var info versionInfo
	if err := entry.Decode(&info); err != nil {
		return Version{}, fmt.Errorf("%s: %w", where, Diagnose(err))
	}
	v := Version{
		Name: name, Served: info.Served == nil || *info.Served,
		Deprecated: info.Deprecated, DeprecationWarning: info.DeprecationWarning,
		Spec: entry.LookupPath(pathSpecDef), Status: entry.LookupPath(pathStatDef),
		PrinterColumns: k.PrinterColumns,
	}
	if info.PrinterColumns != nil {
		v.PrinterColumns = *info.PrinterColumns
	}
	if !v.Spec.Exists() {
		return Version{}, fmt.Errorf("%s: #Spec is not defined: each version has its own schema", where)
	}
	if !v.Status.Exists() {
		v.Status = k.API.LookupPath(pathStatDef)
	}
	return v, nil
}

// loadConversions checks that #Convert declares, for every version but the
// template's, a conversion to it and one back, and nothing else.
func (k *Kind) loadConversions() error {
	hub := k.GVK.Version
	k.conversions = map[conversionKey]cue.Value{}
	declared := k.API.LookupPath(pathConvert)
	if !declared.Exists() {
		if len(k.Versions) > 1 {
			return fmt.Errorf("api package: #Convert is not defined: %s serves %s, and the API server converts between them through the conversions #Convert declares, #Convert.%s.%s and back", k.GVK.Kind, strings.Join(k.versionNames(), ", "), k.otherVersions()[0], hub)
		}
		return nil
	}
	if len(k.Versions) == 1 {
		return fmt.Errorf("api package: #Convert: %s has one version, %s; declare the others in #Versions", k.GVK.Kind, hub)
	}
	froms, err := declared.Fields(cue.Definitions(true))
	if err != nil {
		return fmt.Errorf("api package: #Convert: %w", Diagnose(err))
	}
	for froms.Next() {
		from := froms.Selector().String()
		if k.Version(from) == nil {
			return fmt.Errorf("api package: #Convert.%s: %q is not a version of %s (%s)", from, from, k.GVK.Kind, strings.Join(k.versionNames(), ", "))
		}
		tos, err := froms.Value().Fields(cue.Definitions(true))
		if err != nil {
			return fmt.Errorf("api package: #Convert.%s: %w", from, Diagnose(err))
		}
		for tos.Next() {
			to := tos.Selector().String()
			where := fmt.Sprintf("api package: #Convert.%s.%s", from, to)
			switch {
			case k.Version(to) == nil:
				return fmt.Errorf("%s: %q is not a version of %s (%s)", where, to, k.GVK.Kind, strings.Join(k.versionNames(), ", "))
			case from == to:
				return fmt.Errorf("%s: a version converts to itself unchanged", where)
			case from != hub && to != hub:
				return fmt.Errorf("%s: conversions go to and from %s, the template's version; one between %s and %s goes through it", where, hub, from, to)
			}
			conv := tos.Value()
			for _, field := range []string{"in", "out"} {
				if !conv.LookupPath(cue.ParsePath(field)).Exists() {
					return fmt.Errorf("%s: %s is not defined: cuerator fills in with the %s object and reads its %s form from out", where, field, from, to)
				}
			}
			in := conv.LookupPath(pathIn)
			for _, field := range []string{"metadata", "spec", "status"} {
				if !in.Allows(cue.Str(field)) {
					return fmt.Errorf("%s: in does not allow %s: cuerator fills in with the object's metadata, spec and status; declare in: {metadata: _, spec: ..., status: _} or leave it open", where, field)
				}
			}
			if !conv.LookupPath(cue.ParsePath("out.spec")).Exists() {
				return fmt.Errorf("%s: out.spec is not defined: it is the %s spec", where, to)
			}
			k.conversions[conversionKey{from, to}] = conv
		}
	}
	for _, v := range k.otherVersions() {
		for _, key := range []conversionKey{{v, hub}, {hub, v}} {
			if _, ok := k.conversions[key]; !ok {
				return fmt.Errorf("api package: #Convert.%s.%s is not defined: %s is a version of %s, and the API server converts its objects to and from %s, the template's version, so both directions are needed", key.from, key.to, v, k.GVK.Kind, hub)
			}
		}
	}
	return nil
}

// Version returns the version of k named name, or nil.
func (k *Kind) Version(name string) *Version {
	for i := range k.Versions {
		if k.Versions[i].Name == name {
			return &k.Versions[i]
		}
	}
	return nil
}

// MultiVersion reports whether k serves more than one version, and so
// needs the conversion webhook.
func (k *Kind) MultiVersion() bool { return len(k.Versions) > 1 }

func (k *Kind) versionNames() []string {
	names := make([]string, len(k.Versions))
	for i, v := range k.Versions {
		names[i] = v.Name
	}
	return names
}

func (k *Kind) servedNames() []string {
	var names []string
	for _, v := range k.Versions {
		if v.Served {
			names = append(names, k.GVK.Group+"/"+v.Name)
		}
	}
	return names
}

// otherVersions are the versions besides the template's.
func (k *Kind) otherVersions() []string {
	var out []string
	for _, v := range k.Versions {
		if v.Name != k.GVK.Version {
			out = append(out, v.Name)
		}
	}
	return out
}

// ConversionError is a conversion that failed: the object cannot be
// served in the version asked for.
type ConversionError struct {
	Kind     string
	From, To string
	Err      error
}

func (e *ConversionError) Error() string {
	return fmt.Sprintf("%s: #Convert.%s.%s: %v", e.Kind, e.From, e.To, e.Err)
}
func (e *ConversionError) Unwrap() error { return e.Err }

// Convert returns obj, an object of one of k's versions, in version to.
// A conversion between two versions that are not the template's goes
// through it. obj is not changed.
func (k *Kind) Convert(obj *unstructured.Unstructured, to string) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	if gvk.GroupKind() != k.GVK.GroupKind() {
		return nil, fmt.Errorf("convert: %s is not a %s", gvk, k.GVK.GroupKind())
	}
	from := gvk.Version
	for _, v := range []string{from, to} {
		if k.Version(v) == nil {
			return nil, fmt.Errorf("convert: %s has no version %q (%s)", k.GVK.Kind, v, strings.Join(k.versionNames(), ", "))
		}
	}
	if from == to {
		return obj.DeepCopy(), nil
	}
	hub := k.GVK.Version
	if from != hub && to != hub {
		mid, err := k.convert1(obj, from, hub)
		if err != nil {
			return nil, err
		}
		return k.convert1(mid, hub, to)
	}
	return k.convert1(obj, from, to)
}

func (k *Kind) convert1(obj *unstructured.Unstructured, from, to string) (*unstructured.Unstructured, error) {
	fail := func(err error) error {
		// Paths within the conversion (out.spec.replicas), as its
		// declaration names them.
		var ve *ValidationError
		if errors.As(err, &ve) {
			prefix := fmt.Sprintf("#Convert.%s.%s.", from, to)
			for i := range ve.Errs {
				ve.Errs[i].Path = strings.TrimPrefix(ve.Errs[i].Path, prefix)
			}
		}
		return &ConversionError{Kind: k.GVK.Kind, From: from, To: to, Err: err}
	}
	conv := k.conversions[conversionKey{from, to}]
	meta := map[string]any{"name": obj.GetName(), "labels": map[string]any{}, "annotations": map[string]any{}}
	if ns := obj.GetNamespace(); ns != "" {
		meta["namespace"] = ns
	}
	for key, val := range obj.GetLabels() {
		meta["labels"].(map[string]any)[key] = val
	}
	for key, val := range obj.GetAnnotations() {
		meta["annotations"].(map[string]any)[key] = val
	}
	spec, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec")
	if spec == nil {
		spec = map[string]any{}
	}
	status, hasStatus, _ := unstructured.NestedFieldNoCopy(obj.Object, "status")
	if !hasStatus || status == nil {
		status = map[string]any{}
	}
	// Fill Go values, as a render does: the kind's context does not grow.
	filled := conv.FillPath(pathIn, map[string]any{"metadata": meta, "spec": spec, "status": status})
	out := filled.LookupPath(pathOut)
	if err := out.Validate(cue.Concrete(true)); err != nil {
		return nil, fail(Diagnose(err))
	}
	raw, err := out.MarshalJSON()
	if err != nil {
		return nil, fail(Diagnose(err))
	}
	var result map[string]any
	// Whole numbers as int64, as the API machinery holds them.
	if err := utiljson.Unmarshal(raw, &result); err != nil {
		return nil, fail(fmt.Errorf("out: %w", err))
	}
	newSpec, ok := result["spec"].(map[string]any)
	if !ok {
		return nil, fail(fmt.Errorf("out.spec: must be an object"))
	}
	converted := obj.DeepCopy()
	converted.SetAPIVersion(k.GVK.Group + "/" + to)
	converted.Object["spec"] = newSpec
	if st, given := result["status"]; given {
		newStatus, ok := st.(map[string]any)
		switch {
		case !ok:
			return nil, fail(fmt.Errorf("out.status: must be an object"))
		case len(newStatus) == 0 && !hasStatus:
			delete(converted.Object, "status")
		default:
			converted.Object["status"] = newStatus
		}
	}
	if md, given := result["metadata"]; given {
		md, ok := md.(map[string]any)
		if !ok {
			return nil, fail(fmt.Errorf("out.metadata: must be an object"))
		}
		for field, set := range map[string]func(map[string]string){"labels": converted.SetLabels, "annotations": converted.SetAnnotations} {
			val, given := md[field]
			if !given {
				continue
			}
			m, ok := val.(map[string]any)
			if !ok {
				return nil, fail(fmt.Errorf("out.metadata.%s: must be a map of strings", field))
			}
			var strs map[string]string
			for key, v := range m {
				s, ok := v.(string)
				if !ok {
					return nil, fail(fmt.Errorf("out.metadata.%s.%s: must be a string", field, key))
				}
				if strs == nil {
					strs = map[string]string{}
				}
				strs[key] = s
			}
			set(strs)
		}
		for field := range md {
			if field != "labels" && field != "annotations" {
				return nil, fail(fmt.Errorf("out.metadata.%s: a conversion may change labels and annotations only", field))
			}
		}
	}
	return converted, nil
}

// check validates the spec of cr, an object of version v, against v's
// #Spec, naming the CR's fields as a render does.
func (v *Version) check(cr *unstructured.Unstructured) error {
	spec, _, err := unstructured.NestedFieldNoCopy(cr.Object, "spec")
	if err != nil || spec == nil {
		spec = map[string]any{}
	}
	if err := v.input.FillPath(pathCRSpec, spec).LookupPath(pathCRSpec).Validate(cue.Concrete(true)); err != nil {
		return Diagnose(err)
	}
	return nil
}

// inTemplateVersion returns cr in the version the template renders. A CR
// read in another version of the kind is converted as the API server would
// convert it: a controller started before its templates changed live
// still reads the version it started with.
func (k *Kind) inTemplateVersion(cr *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := cr.GroupVersionKind()
	if gvk == k.GVK {
		return cr, nil
	}
	if gvk.GroupKind() != k.GVK.GroupKind() {
		return nil, fmt.Errorf("render: %s is not a %s", gvk, k.GVK)
	}
	if k.Version(gvk.Version) == nil {
		return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("the CR is read as %s, a version the templates no longer declare (%s): keep it in #Versions, with its conversions, until no CR is stored in it", gvk.GroupVersion(), strings.Join(k.servedNames(), ", "))}
	}
	return k.Convert(cr, k.GVK.Version)
}
