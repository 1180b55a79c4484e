package engine

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	return kind.Render(cr)
}
