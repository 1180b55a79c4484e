package render

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// RenderCR renders cr with the template of its kind.
func (l *Library) RenderCR(cr *unstructured.Unstructured) (*Rendered, error) {
	kind := l.Kind(cr.GroupVersionKind())
	if kind == nil {
		return nil, fmt.Errorf("no template serves %s (apiVersion %q, kind %q)", cr.GroupVersionKind(), cr.GetAPIVersion(), cr.GetKind())
	}
	if cr.GetName() == "" {
		return nil, &ValidationError{Errs: []FieldError{{Path: "metadata.name", Message: "must be set"}}}
	}
	// The API server refuses a CR whose name is not a DNS subdomain, even
	// where the kind's template has no rule on names; so does an offline check.
	if msgs := validation.IsDNS1123Subdomain(cr.GetName()); len(msgs) > 0 {
		return nil, &ValidationError{Errs: []FieldError{{Path: "metadata.name", Message: strings.Join(msgs, "; ")}}}
	}
	// The API server rejects unknown top-level fields (strict field
	// validation); so does an offline check.
	var unknown []FieldError
	for field := range cr.Object {
		switch field {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			unknown = append(unknown, FieldError{Path: field, Message: "field not allowed"})
		}
	}
	if len(unknown) > 0 {
		sort.Slice(unknown, func(i, j int) bool { return unknown[i].Path < unknown[j].Path })
		return nil, &ValidationError{Errs: unknown}
	}
	if v := cr.GroupVersionKind().Version; v != kind.GVK.Version {
		// A CR of another version of the kind: checked against that
		// version's schema, so errors name its fields, then converted to
		// the template's version as the API server would serve it to the
		// operator.
		version := kind.Version(v)
		if version == nil || !version.Served {
			return nil, fmt.Errorf("no template serves %s (apiVersion %q, kind %q): %s serves %s", cr.GroupVersionKind(), cr.GetAPIVersion(), cr.GetKind(), kind.GVK.Kind, strings.Join(kind.servedNames(), ", "))
		}
		if err := version.check(cr); err != nil {
			return nil, err
		}
		converted, err := kind.Convert(cr, kind.GVK.Version)
		if err != nil {
			return nil, err
		}
		cr = converted
	}
	return kind.Render(cr)
}
