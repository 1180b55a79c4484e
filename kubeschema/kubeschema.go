// Package kubeschema checks objects offline against the Kubernetes API's own
// schemas of the built-in kinds: the structured-merge-diff schemas that ship
// inside client-go (those of its apply configurations), the ones the API
// server's server-side apply types objects by. It reports what the API
// server would refuse as a field it does not know or a value of the wrong
// type, with each field's path, so that a misspelt Deployment field fails a
// render offline rather than an apply. It knows nothing of CUE or of
// cuerator; kinds that a CRD defines (ServiceMonitor, Certificate) have no
// built-in schema and are not checked.
package kubeschema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
)

// Issue is one thing in an object that its kind's schema refuses.
type Issue struct {
	// Path leads from the object's root to the field: field names
	// (string) and list indices (int).
	Path []any
	// Message says what is wrong with it.
	Message string
}

// PathString writes Path as field paths are written elsewhere:
// spec.template.spec.containers[0].image.
func (i Issue) PathString() string { return PathString(i.Path) }

func (i Issue) String() string { return i.PathString() + ": " + i.Message }

// PathString writes a path of field names and list indices.
func PathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// converter types objects by the schemas client-go ships; parsing them
// takes a moment, so it happens once, on first use.
var converter = sync.OnceValue(func() managedfields.TypeConverter {
	return applyconfigurations.NewTypeConverter(scheme.Scheme)
})

// Known reports whether gvk is a built-in kind, one Check can check.
func Known(gvk schema.GroupVersionKind) bool {
	return scheme.Scheme.Recognizes(gvk)
}

// Check returns what the schema of obj's kind refuses in obj: fields it
// does not declare, values of another type, duplicate keys in a list the
// API server merges by key. known is false when obj's kind has no built-in
// schema: nothing was checked.
func Check(obj *unstructured.Unstructured) (issues []Issue, known bool) {
	gvk := obj.GroupVersionKind()
	if !Known(gvk) {
		return nil, false
	}
	// The schema of the kind, from an object that is nothing but its kind.
	bare := &unstructured.Unstructured{}
	bare.SetGroupVersionKind(gvk)
	tv, err := converter().ObjectToTyped(bare)
	if err != nil {
		return nil, false
	}
	c := &checker{schema: tv.Schema(), kind: gvk.Kind + " " + gvk.GroupVersion().String()}
	c.value(tv.TypeRef(), obj.Object, nil)
	return c.issues, true
}

type checker struct {
	schema *smdschema.Schema
	kind   string
	issues []Issue
}

func (c *checker) add(path []any, format string, args ...any) {
	c.issues = append(c.issues, Issue{Path: slices.Clone(path), Message: fmt.Sprintf(format, args...)})
}

// value checks v, at path, against the type tr, as structured-merge-diff
// validates (sigs.k8s.io/structured-merge-diff/v6/typed), but reporting
// every issue rather than the first of each object.
func (c *checker) value(tr smdschema.TypeRef, v any, path []any) {
	if v == nil {
		return // null is any type's
	}
	atom, ok := c.schema.Resolve(tr)
	if !ok {
		return // a schema without this type: nothing known to check
	}
	switch v := v.(type) {
	case map[string]any:
		if atom.Map == nil {
			c.add(path, "is an object; the schema of %s wants %s here", c.kind, want(atom))
			return
		}
		for _, key := range slices.Sorted(func(yield func(string) bool) {
			for k := range v {
				if !yield(k) {
					return
				}
			}
		}) {
			field := append(path, key)
			if sf, ok := atom.Map.FindField(key); ok {
				c.value(sf.Type, v[key], field)
			} else if (atom.Map.ElementType == smdschema.TypeRef{}) {
				c.add(field, "unknown field: the schema of %s has no such field", c.kind)
			} else {
				c.value(atom.Map.ElementType, v[key], field)
			}
		}
	case []any:
		if atom.List == nil {
			c.add(path, "is a list; the schema of %s wants %s here", c.kind, want(atom))
			return
		}
		seen := map[string]int{}
		for i, item := range v {
			at := append(path, i)
			if atom.List.ElementRelationship == smdschema.Associative && len(atom.List.Keys) > 0 {
				if m, ok := item.(map[string]any); ok {
					key := listKey(atom.List.Keys, m)
					if first, dup := seen[key]; dup {
						c.add(at, "duplicate entry for key %s (item %d has it too): the API server merges this list by that key", key, first)
					} else {
						seen[key] = i
					}
				}
			}
			c.value(atom.List.ElementType, item, at)
		}
	default:
		if atom.Scalar == nil {
			c.add(path, "is %s; the schema of %s wants %s here", describe(v), c.kind, want(atom))
			return
		}
		if msg := scalar(*atom.Scalar, v); msg != "" {
			c.add(path, "is %s; the schema of %s wants %s", describe(v), c.kind, msg)
		}
	}
}

// listKey is an associative list item's key: its key fields' values.
func listKey(keys []string, item map[string]any) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, item[k])
	}
	return strings.Join(parts, ",")
}

// scalar is what a scalar type wants, when v is not of it.
func scalar(t smdschema.Scalar, v any) string {
	switch t {
	case smdschema.Numeric:
		switch v.(type) {
		case int64, int, int32, float64, float32:
			return ""
		}
		return "a number"
	case smdschema.String:
		if _, ok := v.(string); ok {
			return ""
		}
		return "a string"
	case smdschema.Boolean:
		if _, ok := v.(bool); ok {
			return ""
		}
		return "a boolean"
	}
	return "" // untyped: any scalar
}

func want(a smdschema.Atom) string {
	var kinds []string
	if a.Map != nil {
		kinds = append(kinds, "an object")
	}
	if a.List != nil {
		kinds = append(kinds, "a list")
	}
	if a.Scalar != nil {
		switch *a.Scalar {
		case smdschema.Numeric:
			kinds = append(kinds, "a number")
		case smdschema.String:
			kinds = append(kinds, "a string")
		case smdschema.Boolean:
			kinds = append(kinds, "a boolean")
		default:
			kinds = append(kinds, "a scalar")
		}
	}
	return strings.Join(kinds, " or ")
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case int64, int, float64:
		return fmt.Sprintf("the number %v", v)
	}
	return fmt.Sprintf("%T", v)
}
