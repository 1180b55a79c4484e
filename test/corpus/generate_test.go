package corpus

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// The issue asks for at least 200 invalid CRs, hand-written and generated.
const minInvalidCases = 200

func TestInvalidCasesBreakOneRealField(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := Invalid(lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < minInvalidCases {
		t.Fatalf("%d invalid cases, want at least %d", len(cases), minInvalidCases)
	}
	specs := map[string]apiextensionsv1.JSONSchemaProps{}
	for _, kind := range lib.Kinds() {
		crd, err := crdgen.Generate(kind)
		if err != nil {
			t.Fatal(err)
		}
		specs[strings.ToLower(kind.GVK.Kind)] = *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	}

	seen := map[string]bool{}
	covered := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name()] {
			t.Errorf("two cases are named %s", c.Name())
		}
		seen[c.Name()] = true
		root, ok := specs[c.Kind]
		if !ok {
			t.Errorf("%s: no kind %q", c.Name(), c.Kind)
			continue
		}
		if c.Violation == CorpusFile {
			continue
		}
		covered[c.Kind+"/"+c.Field] = true
		if err := inSchema(root, c.Field, c.Violation == UnknownField); err != "" {
			t.Errorf("%s: %s", c.Name(), err)
		}
		base, err := Base(c.Kind)
		if err != nil {
			t.Fatal(err)
		}
		diff := differences(base.Object, c.CR.Object, "")
		if c.Violation == TooManyItems {
			// A map with entries added differs at each new key.
			diff = slices.Compact(slices.Sorted(func(yield func(string) bool) {
				for _, d := range diff {
					if strings.HasPrefix(d, c.Field+".") {
						d = c.Field
					}
					if !yield(d) {
						return
					}
				}
			}))
		}
		if !slices.Equal(diff, []string{c.Field}) {
			t.Errorf("%s: differs from the base at %v, want only at %s", c.Name(), diff, c.Field)
		}
	}
	// Every field of every spec is broken at least once.
	for kind, root := range specs {
		for _, field := range schemaPaths(root.Properties["spec"], "spec") {
			if !covered[kind+"/"+field] {
				t.Errorf("%s: no case breaks %s", kind, field)
			}
		}
	}
	// A few cases a reader of the schemas expects, by name.
	for _, want := range []string{
		"webapp/spec.replicas/above-maximum/101",
		"webapp/spec.tls.secretName/missing-required/removed",
		"webapp/spec.domain/too-long/254-characters",
		"webapp/metadata.name/bad-name/dot",
		"database/spec.type/not-in-enum/other",
		"database/spec.backup.schedule/pattern-mismatch/trailing-space",
		"database/spec.backup.Enabled/unknown-field/capitalised",
		"database/metadata.name/bad-name/46-characters",
		"memcached/spec.size/below-minimum/0",
		"memcached/spec/wrong-type/list",
	} {
		if !seen[want] {
			t.Errorf("no case %s", want)
		}
	}
	// Memcached's CUE has no rule on names: a dot is fine there.
	if seen["memcached/metadata.name/bad-name/dot"] {
		t.Errorf("memcached/metadata.name/bad-name/dot: Memcached allows a dot in its name")
	}
}

// inSchema says what is wrong with field as a path of root ("" if
// nothing): an unknown field must be new in an object that exists.
func inSchema(root apiextensionsv1.JSONSchemaProps, field string, unknown bool) string {
	if field == "metadata.name" {
		return ""
	}
	parts := strings.Split(field, ".")
	s := root
	for i, p := range parts {
		next, ok := s.Properties[p]
		// A list's item is named by its index, a map's entry by its key.
		if _, err := strconv.Atoi(p); err == nil && s.Items != nil && s.Items.Schema != nil {
			next, ok = *s.Items.Schema, true
		} else if !ok && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil && !unknown {
			next, ok = *s.AdditionalProperties.Schema, true
		}
		switch {
		case unknown && i == len(parts)-1 && ok:
			return "the unknown field " + p + " is in the schema"
		case unknown && i == len(parts)-1:
			return ""
		case !ok:
			return "no field " + strings.Join(parts[:i+1], ".") + " in the schema"
		}
		s = next
	}
	return ""
}

// schemaPaths lists the path of s and of every field below it, a list's
// item as its first (a map's entries, whose keys the schema does not
// name, are not listed).
func schemaPaths(s apiextensionsv1.JSONSchemaProps, path string) []string {
	out := []string{path}
	for name, p := range s.Properties {
		out = append(out, schemaPaths(p, path+"."+name)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		out = append(out, schemaPaths(*s.Items.Schema, path+".0")...)
	}
	return out
}

// differences lists the paths at which b differs from a, stopping at the
// first difference down each branch.
func differences(a, b any, path string) []string {
	if al, ok := a.([]any); ok {
		if bl, ok := b.([]any); ok && len(al) == len(bl) {
			var out []string
			for i := range al {
				out = append(out, differences(al[i], bl[i], fmt.Sprintf("%s.%d", path, i))...)
			}
			return out
		}
	}
	am, aObject := a.(map[string]any)
	bm, bObject := b.(map[string]any)
	if !aObject || !bObject {
		if reflect.DeepEqual(a, b) {
			return nil
		}
		return []string{path}
	}
	var out []string
	for key := range am {
		if _, ok := bm[key]; !ok {
			out = append(out, strings.TrimPrefix(path+"."+key, "."))
		}
	}
	for key, bv := range bm {
		av, ok := am[key]
		if !ok {
			out = append(out, strings.TrimPrefix(path+"."+key, "."))
			continue
		}
		out = append(out, differences(av, bv, strings.TrimPrefix(path+"."+key, "."))...)
	}
	sort.Strings(out)
	return out
}

// Length cases keep to the pattern, so that the bound alone refuses them.
func TestLengthCasesKeepThePattern(t *testing.T) {
	minLength, maxLength := int64(3), int64(40)
	schema := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"host": {Type: "string", MinLength: &minLength, MaxLength: &maxLength, Pattern: `^[a-z]+(\.[a-z]+)+$`},
	}}
	g := &generator{kind: "test", base: &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "base"},
		"spec":     map[string]any{"host": "shop.example.com"},
	}}}
	if err := g.walk([]string{"spec"}, schema, true); err != nil {
		t.Fatal(err)
	}
	lengths := map[Violation]string{}
	for _, c := range g.cases {
		if c.Violation == TooShort || c.Violation == TooLong {
			lengths[c.Violation], _, _ = unstructured.NestedString(c.CR.Object, "spec", "host")
		}
	}
	if got := lengths[TooShort]; got != "aa" {
		t.Errorf("too short: %q, want aa", got)
	}
	long := lengths[TooLong]
	if len(long) != 41 || !strings.Contains(long, ".") {
		t.Errorf("too long: %q, want 41 characters that match the pattern", long)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		message, field string
		want           bool
	}{
		{`spec.replicas: Invalid value: 0`, "spec.replicas", true},
		{`strict decoding error: unknown field "spec.Size"`, "spec.Size", true},
		{`spec.storage.size: Required value`, "spec.storage", true},
		{`spec.replicas: Invalid value: 0`, "spec.replica", false},
		{`spec.tls.secretName: Required value`, "tls.secretName", false},
		{`metadata.name: Invalid value`, "spec", false},
		{`spec.nodeSets[0].count: Invalid value: 0`, "spec.nodeSets.0.count", true},
		{`spec.nodeSets.0.count: invalid value 0`, "spec.nodeSets.0.count", true},
		{`spec.nodeSets[0].count: Invalid value: 0`, "spec.nodeSets.1.count", false},
	} {
		if got := Names(tc.message, tc.field); got != tc.want {
			t.Errorf("Names(%q, %q) = %v, want %v", tc.message, tc.field, got, tc.want)
		}
	}
}
