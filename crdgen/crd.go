// Package crdgen generates a kind's CustomResourceDefinition from its CUE api
// package. The operator installs CRDs at run time, so this is runtime code,
// not only an authoring tool; it knows CUE and the CRD format, and nothing
// of applying.
package crdgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

// Generate returns the CustomResourceDefinition of k, from its api package.
func Generate(k *render.Kind) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd, _, err := GenerateWithWarnings(k)
	return crd, err
}

// GenerateWithWarnings is Generate, and also returns the constraints of the
// api package that the CRD enforces differently from CUE (see Warning).
//
// A kind of several versions gets one entry of spec.versions per version,
// each with its own schema and printer columns, the storage version marked
// (versions.go). Its spec.conversion is left out: the API server's
// webhook is the running operator, whose address and CA are not the
// templates' to know. The operator sets it when it installs CRDs itself,
// and the CRDs that deploy/ ships get the in-cluster Service
// (GenerateAll, WithConversion).
func GenerateWithWarnings(k *render.Kind) (*apiextensionsv1.CustomResourceDefinition, []Warning, error) {
	var versions []apiextensionsv1.CustomResourceDefinitionVersion
	var warnings []Warning
	for _, v := range versionsOf(k) {
		root, vw, err := versionSchema(k, v)
		if err != nil {
			if v.Name != k.GVK.Version {
				return nil, nil, fmt.Errorf("kind %s: CRD: version %s: %w", k.GVK.Kind, v.Name, err)
			}
			return nil, nil, fmt.Errorf("kind %s: CRD: %w", k.GVK.Kind, err)
		}
		if v.Name != k.GVK.Version {
			for i := range vw {
				vw[i].Path = v.Name + " " + vw[i].Path
			}
		}
		warnings = append(warnings, vw...)
		var columns []apiextensionsv1.CustomResourceColumnDefinition
		for _, c := range v.PrinterColumns {
			columns = append(columns, apiextensionsv1.CustomResourceColumnDefinition{
				Name:        c.Name,
				Type:        c.Type,
				JSONPath:    c.JSONPath,
				Description: c.Description,
				Priority:    c.Priority,
			})
		}
		version := apiextensionsv1.CustomResourceDefinitionVersion{
			Name:       v.Name,
			Served:     v.Served,
			Storage:    v.Name == storageOf(k),
			Deprecated: v.Deprecated,
			Schema:     &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: root},
			Subresources: &apiextensionsv1.CustomResourceSubresources{
				Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
			},
			AdditionalPrinterColumns: columns,
		}
		if v.DeprecationWarning != "" {
			version.DeprecationWarning = &v.DeprecationWarning
		}
		versions = append(versions, version)
	}
	slices.SortStableFunc(warnings, func(a, b Warning) int { return strings.Compare(a.Path, b.Path) })

	singular := k.Singular
	if singular == "" {
		singular = strings.ToLower(k.GVK.Kind)
	}
	scope := apiextensionsv1.ClusterScoped
	if k.Namespaced {
		scope = apiextensionsv1.NamespaceScoped
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{
			APIVersion: apiextensionsv1.SchemeGroupVersion.String(),
			Kind:       "CustomResourceDefinition",
		},
		ObjectMeta: metav1.ObjectMeta{Name: k.Plural + "." + k.GVK.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: k.GVK.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural:     k.Plural,
				Singular:   singular,
				Kind:       k.GVK.Kind,
				ListKind:   k.GVK.Kind + "List",
				ShortNames: slices.Clone(k.ShortNames),
				Categories: slices.Clone(k.Categories),
			},
			Scope:    scope,
			Versions: versions,
		},
	}
	if err := addScale(k, crd); err != nil {
		return nil, nil, fmt.Errorf("kind %s: CRD: %w", k.GVK.Kind, err)
	}
	if err := validateCRD(crd); err != nil {
		return nil, nil, fmt.Errorf("kind %s: generated CRD is invalid: %w", k.GVK.Kind, err)
	}
	return crd, warnings, nil
}

// versionsOf returns the versions of k. A kind of one version is read from
// its GVK, #Spec, #Status and PrinterColumns, as before kinds had several.
func versionsOf(k *render.Kind) []render.Version {
	if k.MultiVersion() {
		return k.Versions
	}
	return []render.Version{{
		Name: k.GVK.Version, Served: true,
		Spec: k.API.LookupPath(cue.ParsePath("#Spec")), Status: k.API.LookupPath(cue.ParsePath("#Status")),
		PrinterColumns: k.PrinterColumns,
	}}
}

func storageOf(k *render.Kind) string {
	if k.MultiVersion() {
		return k.StorageVersion
	}
	return k.GVK.Version
}

// versionSchema is the OpenAPI schema of one version of k: its #Spec and
// #Status, and the kind's #Name rules.
func versionSchema(k *render.Kind, v render.Version) (*apiextensionsv1.JSONSchemaProps, []Warning, error) {
	specDef, statusDef := v.Spec, v.Status
	for i, def := range []cue.Value{specDef, statusDef} {
		if kind := cueKindOf(def); kind != cue.StructKind {
			return nil, nil, fmt.Errorf("%s must be a struct, not %v", []string{"#Spec", "#Status"}[i], kind)
		}
	}

	specWalk := newSchemaWalk(true)
	spec, err := specWalk.node(specDef, "spec", step{kind: stepRoot})
	if err != nil {
		return nil, nil, err
	}
	specWalk.applyBounds(spec, "spec")
	spec.Description = cueDoc(specDef)
	specRequired := cueNeedsInput(specDef)
	if !specRequired && spec.Type == "object" {
		// A CR without spec still gets the spec's defaults.
		spec.Default = &apiextensionsv1.JSON{Raw: []byte("{}")}
	}
	statusWalk := newSchemaWalk(false)
	status, err := statusWalk.node(statusDef, "status", step{kind: stepRoot})
	if err != nil {
		return nil, nil, err
	}
	status.Description = cueDoc(statusDef)
	warnings := append(specWalk.warnings, statusWalk.warnings...)

	root := &apiextensionsv1.JSONSchemaProps{
		Type:        "object",
		Description: kindDoc(k),
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"apiVersion": {Type: "string", Description: "APIVersion defines the versioned schema of this representation of an object."},
			"kind":       {Type: "string", Description: "Kind is a string value representing the REST resource this object represents."},
			"metadata":   {Type: "object"},
			"spec":       *spec,
			"status":     *status,
		},
	}
	if specRequired {
		root.Required = []string{"spec"}
	}
	if nameDef := k.API.LookupPath(cue.ParsePath("#Name")); nameDef.Exists() {
		if kind := cueKindOf(nameDef); kind != cue.StringKind {
			return nil, nil, fmt.Errorf("#Name, the rule for metadata.name, must be a string, not %v", kind)
		}
		rules, nameWarnings := nameRules(nameDef)
		root.XValidations = rules
		warnings = append(warnings, nameWarnings...)
		// A rule's fieldPath must name a field of the schema.
		root.Properties["metadata"] = apiextensionsv1.JSONSchemaProps{
			Type:       "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": {Type: "string"}},
		}
	}
	return root, warnings, nil
}

// kindDoc describes the kind, for kubectl explain: the first paragraph of
// the doc comment of the whole-manifest definition named after the kind
// (#WebApp); the rest of that comment is about the definition.
func kindDoc(k *render.Kind) string {
	def := k.API.LookupPath(cue.MakePath(cue.Def(k.GVK.Kind)))
	if !def.Exists() {
		return ""
	}
	first, _, _ := strings.Cut(cueDoc(def), "\n\n")
	return first
}

// GenerateAll returns the CRD of every kind of lib, in the library's kind
// order. A kind of several versions is refused: its CRD needs the address
// of the conversion webhook where it is deployed (Generate, then
// WithConversion), which the outputs built on GenerateAll (the Helm chart,
// the OLM bundle) do not set up yet.
func GenerateAll(lib *render.Library) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(lib.Kinds()))
	for _, k := range lib.Kinds() {
		if k.MultiVersion() {
			return nil, fmt.Errorf("kind %s has %d versions: its CRD converts through the operator's webhook, which only deploy/ sets up (cuerator crds, deploy/conversion); the Helm chart and the OLM bundle do not yet", k.GVK.Kind, len(k.Versions))
		}
		crd, err := Generate(k)
		if err != nil {
			return nil, err
		}
		out = append(out, crd)
	}
	return out, nil
}

// MarshalYAML renders CRDs as one multi-document YAML stream, without the
// empty status and creationTimestamp that a typed object always carries.
// Keys are sorted, so the output is stable.
func MarshalYAML(crds []*apiextensionsv1.CustomResourceDefinition) ([]byte, error) {
	var buf bytes.Buffer
	for i, crd := range crds {
		raw, err := json.Marshal(crd)
		if err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
		delete(obj, "status")
		if md, ok := obj["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		out, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(out)
	}
	return buf.Bytes(), nil
}

// validateCRD runs the API server's own create validation, which includes
// the structural-schema rules, default pruning and default validation.
func validateCRD(crd *apiextensionsv1.CustomResourceDefinition) error {
	v1 := crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(v1)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, &internal, nil); err != nil {
		return err
	}
	errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, crdErrorString(e))
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

var (
	crdSchemaPathPrefix = regexp.MustCompile(`^spec\.versions\[\d+\]\.schema\.openAPIV3Schema\.?`)
	crdSchemaPathProp   = regexp.MustCompile(`properties\[([^\]]+)\]`)
)

// crdErrorString names a schema error by the CR field it is about
// ("spec.size") rather than by its place in the CRD.
func crdErrorString(e *field.Error) string {
	p := e.Field
	if crdSchemaPathPrefix.MatchString(p) {
		p = crdSchemaPathPrefix.ReplaceAllString(p, "")
		p = crdSchemaPathProp.ReplaceAllString(p, "$1")
		p = strings.ReplaceAll(p, ".items", "[]")
		p = strings.ReplaceAll(p, ".additionalProperties", "[*]")
		if p == "" {
			p = "(root)"
		}
		p = "field " + p
	}
	return fmt.Sprintf("%s: %s", p, e.ErrorBody())
}

// crdFieldError reports a schema problem at a CR field path, with the CUE position.
func crdFieldError(v cue.Value, path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if pos := v.Pos(); pos.IsValid() && pos.Filename() != "" {
		return fmt.Errorf("%s: %s (%s:%d)", path, msg, filepath.ToSlash(pos.Filename()), pos.Line())
	}
	return fmt.Errorf("%s: %s", path, msg)
}
