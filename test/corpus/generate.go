package corpus

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// files are the corpus's CRs, so that callers need not know where the
// package lies on disk.
//
//go:embed valid/*.yaml invalid/*.yaml
var files embed.FS

// Violation is the kind of rule an invalid case breaks.
type Violation string

const (
	WrongType       Violation = "wrong-type"
	BelowMinimum    Violation = "below-minimum"
	AboveMaximum    Violation = "above-maximum"
	TooShort        Violation = "too-short"
	TooLong         Violation = "too-long"
	PatternMismatch Violation = "pattern-mismatch"
	NotInEnum       Violation = "not-in-enum"
	MissingRequired Violation = "missing-required"
	UnknownField    Violation = "unknown-field"
	TooManyItems    Violation = "too-many-items"
	// BadName breaks a rule on metadata.name: Kubernetes' own, or one that
	// the kind's CUE #Name adds (the CRD's root rules).
	BadName Violation = "bad-name"
	// CorpusFile is a hand-written case of invalid/.
	CorpusFile Violation = "corpus-file"
)

// Case is one invalid CR and the field its refusal must name.
type Case struct {
	// Kind is the CR's kind in lower case, the prefix of corpus file names.
	Kind string
	// Field is the path the case breaks, such as spec.backup.schedule.
	Field     string
	Violation Violation
	// Detail tells the cases of one field and violation apart.
	Detail string
	CR     *unstructured.Unstructured
}

// Name identifies the case in test names and logs.
func (c Case) Name() string {
	return c.Kind + "/" + c.Field + "/" + string(c.Violation) + "/" + c.Detail
}

// Invalid returns every invalid CR: the files of invalid/ and the cases
// Generate derives from the kinds' CRDs.
func Invalid(lib *render.Library) ([]Case, error) {
	names, err := fs.Glob(files, "invalid/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []Case
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		field, err := readRejectsHeader(bytes.NewReader(data), name)
		if err != nil {
			return nil, err
		}
		cr, err := decodeCR(data, name)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(path.Base(name), ".yaml")
		kind, _, _ := strings.Cut(base, "-")
		out = append(out, Case{Kind: kind, Field: field, Violation: CorpusFile, Detail: base, CR: cr})
	}
	generated, err := Generate(lib)
	if err != nil {
		return nil, err
	}
	return append(out, generated...), nil
}

// Base is the valid CR that the generated cases of kind (lower case) start
// from: valid/<kind>-all-fields.yaml, which sets every spec field.
func Base(kind string) (*unstructured.Unstructured, error) {
	name := "valid/" + kind + "-all-fields.yaml"
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return decodeCR(data, name)
}

func decodeCR(data []byte, name string) (*unstructured.Unstructured, error) {
	objs, err := render.ReadManifests(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%s: %d objects, want 1", name, len(objs))
	}
	return objs[0], nil
}

// Generate derives invalid CRs from each kind's CRD, systematically: for
// every spec field, each rule its schema states is broken once or a few
// times, starting from the kind's Base and changing nothing else. Names
// that Kubernetes or the kind's CUE #Name refuse are added: the schema
// cannot state them, the CRD's root rules do.
func Generate(lib *render.Library) ([]Case, error) {
	var out []Case
	for _, kind := range lib.Kinds() {
		crd, err := crdgen.Generate(kind)
		if err != nil {
			return nil, err
		}
		if len(crd.Spec.Versions) != 1 {
			return nil, fmt.Errorf("%s: %d versions; the generator reads one", kind.GVK.Kind, len(crd.Spec.Versions))
		}
		name := strings.ToLower(kind.GVK.Kind)
		base, err := Base(name)
		if err != nil {
			return nil, err
		}
		g := &generator{kind: name, base: base}
		root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		// Only spec is walked: the rest of the top level is Kubernetes' or
		// the operator's. A typo of spec itself is a case all the same.
		g.unknownField(nil, root)
		if err := g.walk([]string{"spec"}, root.Properties["spec"], slices.Contains(root.Required, "spec")); err != nil {
			return nil, fmt.Errorf("%s: %w", kind.GVK.Kind, err)
		}
		if err := g.badNames(kind.API.LookupPath(cue.ParsePath("#Name"))); err != nil {
			return nil, fmt.Errorf("%s: %w", kind.GVK.Kind, err)
		}
		out = append(out, g.cases...)
	}
	return out, nil
}

type generator struct {
	kind  string
	base  *unstructured.Unstructured
	cases []Case
}

// set adds a case whose CR is the base with value at path.
func (g *generator) set(path []string, v Violation, detail string, value any) {
	cr := g.base.DeepCopy()
	if !setPath(cr.Object, value, path) {
		// The path was read from the base, so its parents exist.
		panic(fmt.Sprintf("%s: no such field in the base", strings.Join(path, ".")))
	}
	g.add(path, v, detail, cr)
}

func (g *generator) add(path []string, v Violation, detail string, cr *unstructured.Unstructured) {
	g.cases = append(g.cases, Case{Kind: g.kind, Field: strings.Join(path, "."), Violation: v, Detail: detail, CR: cr})
}

// variant is a value and a word for it.
type variant struct {
	detail string
	value  any
}

// wrongTypes are values of every JSON type but the schema's.
var wrongTypes = map[string][]variant{
	"object":  {{"string", "yes"}, {"list", []any{"yes"}}, {"number", int64(1)}},
	"string":  {{"number", int64(42)}, {"boolean", true}, {"object", map[string]any{"value": "x"}}},
	"integer": {{"string", "3"}, {"fraction", 1.5}, {"boolean", true}},
	"array":   {{"string", "yes"}, {"object", map[string]any{"value": "x"}}, {"number", int64(1)}},
	"boolean": {{"string", "true"}, {"number", int64(1)}, {"object", map[string]any{}}},
}

func (g *generator) walk(path []string, s apiextensionsv1.JSONSchemaProps, required bool) error {
	field := strings.Join(path, ".")
	value, found := getPath(g.base.Object, path)
	if !found {
		return fmt.Errorf("the base %s does not set %s: every field needs a valid value to break", g.base.GetName(), field)
	}
	if required {
		cr := g.base.DeepCopy()
		removePath(cr.Object, path)
		g.add(path, MissingRequired, "removed", cr)
	}
	wrong, ok := wrongTypes[s.Type]
	if !ok {
		return fmt.Errorf("%s: type %q: the generator does not know it yet", field, s.Type)
	}
	for _, w := range wrong {
		g.set(path, WrongType, w.detail, w.value)
	}
	switch s.Type {
	case "object":
		if s.XPreserveUnknownFields != nil {
			return fmt.Errorf("%s: objects that keep unknown fields: the generator does not know them yet", field)
		}
		if s.AdditionalProperties != nil {
			return g.mapOf(path, s, value)
		}
		g.unknownField(path, &s)
		names := make([]string, 0, len(s.Properties))
		for name := range s.Properties {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := g.walk(append(slices.Clip(path), name), s.Properties[name], slices.Contains(s.Required, name)); err != nil {
				return err
			}
		}
	case "array":
		return g.listOf(path, s, value)
	case "integer":
		g.bounds(path, s)
	case "string":
		return g.strings(path, s, value)
	}
	return nil
}

// mapOf breaks a map: one entry too many, and the first entry's value by
// the rules of every value.
func (g *generator) mapOf(path []string, s apiextensionsv1.JSONSchemaProps, value any) error {
	field := strings.Join(path, ".")
	entries, _ := value.(map[string]any)
	if len(entries) == 0 || s.AdditionalProperties.Schema == nil {
		return fmt.Errorf("the base %s sets no entry of %s: every field needs a valid value to break", g.base.GetName(), field)
	}
	keys := slices.Sorted(maps.Keys(entries))
	if s.MaxProperties != nil {
		many := map[string]any{}
		for i := range int(*s.MaxProperties) + 1 {
			many[fmt.Sprintf("key%d", i)] = entries[keys[0]]
		}
		g.set(path, TooManyItems, fmt.Sprintf("%d-entries", len(many)), many)
	}
	return g.walk(append(slices.Clip(path), keys[0]), *s.AdditionalProperties.Schema, false)
}

// listOf breaks a list: one item too many, and its first item by the rules
// of every item.
func (g *generator) listOf(path []string, s apiextensionsv1.JSONSchemaProps, value any) error {
	field := strings.Join(path, ".")
	items, _ := value.([]any)
	if len(items) == 0 || s.Items == nil || s.Items.Schema == nil {
		return fmt.Errorf("the base %s sets no item of %s: every field needs a valid value to break", g.base.GetName(), field)
	}
	if s.MaxItems != nil {
		many := make([]any, *s.MaxItems+1)
		for i := range many {
			many[i] = runtime.DeepCopyJSONValue(items[0])
		}
		g.set(path, TooManyItems, fmt.Sprintf("%d-items", len(many)), many)
	}
	return g.walk(append(slices.Clip(path), "0"), *s.Items.Schema, false)
}

// getPath reads the field at path of obj, where a segment under a list is
// an index.
func getPath(obj any, path []string) (any, bool) {
	for _, seg := range path {
		switch o := obj.(type) {
		case map[string]any:
			v, ok := o[seg]
			if !ok {
				return nil, false
			}
			obj = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(o) {
				return nil, false
			}
			obj = o[i]
		default:
			return nil, false
		}
	}
	return obj, true
}

// setPath sets the field at path of obj, whose parent must exist.
func setPath(obj map[string]any, value any, path []string) bool {
	parent, ok := getPath(obj, path[:len(path)-1])
	if !ok {
		return false
	}
	last := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		p[last] = value
		return true
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(p) {
			return false
		}
		p[i] = value
		return true
	}
	return false
}

// removePath removes the field at path of obj, under objects only (a
// required field is a field of an object).
func removePath(obj map[string]any, path []string) {
	if parent, ok := getPath(obj, path[:len(path)-1]); ok {
		if p, ok := parent.(map[string]any); ok {
			delete(p, path[len(path)-1])
		}
	}
}

// unknownField adds a case with a capitalised copy of the object's first
// required field (or first field), the typo YAML authors make most.
func (g *generator) unknownField(path []string, s *apiextensionsv1.JSONSchemaProps) {
	names := slices.Clone(s.Required)
	if len(names) == 0 {
		for name := range s.Properties {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	typo := strings.ToUpper(names[0][:1]) + names[0][1:]
	g.set(append(slices.Clip(path), typo), UnknownField, "capitalised", true)
}

// bounds adds a value just past each bound and one far past it.
func (g *generator) bounds(path []string, s apiextensionsv1.JSONSchemaProps) {
	if s.Minimum != nil {
		edge := int64(*s.Minimum) - 1
		if s.ExclusiveMinimum {
			edge++
		}
		g.set(path, BelowMinimum, fmt.Sprint(edge), edge)
		g.set(path, BelowMinimum, fmt.Sprint(edge-1_000_000), edge-1_000_000)
	}
	if s.Maximum != nil {
		edge := int64(*s.Maximum) + 1
		if s.ExclusiveMaximum {
			edge--
		}
		g.set(path, AboveMaximum, fmt.Sprint(edge), edge)
		g.set(path, AboveMaximum, fmt.Sprint(edge+1_000_000), edge+1_000_000)
	}
}

func (g *generator) strings(path []string, s apiextensionsv1.JSONSchemaProps, value any) error {
	field := strings.Join(path, ".")
	valid, ok := value.(string)
	if !ok {
		return fmt.Errorf("the base %s sets %s to %v, not a string", g.base.GetName(), field, value)
	}
	var pattern *regexp.Regexp
	if s.Pattern != "" {
		var err error
		if pattern, err = regexp.Compile(s.Pattern); err != nil {
			return fmt.Errorf("%s: pattern: %w", field, err)
		}
		if !pattern.MatchString(valid) {
			return fmt.Errorf("the base %s sets %s to %q, which its pattern refuses", g.base.GetName(), field, valid)
		}
	}
	// A length case keeps to the pattern when it can, so that the bound
	// alone is what refuses it.
	if s.MinLength != nil && *s.MinLength > 0 {
		short := lengthVariant(int(*s.MinLength)-1, pattern)
		g.set(path, TooShort, fmt.Sprintf("%d-characters", len(short)), short)
	}
	if s.MaxLength != nil {
		long := lengthVariant(int(*s.MaxLength)+1, pattern)
		g.set(path, TooLong, fmt.Sprintf("%d-characters", len(long)), long)
	}
	if len(s.Enum) > 0 {
		allowed := map[string]bool{}
		for _, e := range s.Enum {
			allowed[strings.Trim(string(e.Raw), `"`)] = true
		}
		for _, v := range []variant{{"upper-case", strings.ToUpper(valid)}, {"empty", ""}, {"other", "other"}} {
			if !allowed[v.value.(string)] {
				g.set(path, NotInEnum, v.detail, v.value)
			}
		}
	}
	if pattern == nil {
		return nil
	}
	for _, v := range patternBreakers(valid) {
		text := v.value.(string)
		tooShort := s.MinLength != nil && int64(len(text)) < *s.MinLength
		tooLong := s.MaxLength != nil && int64(len(text)) > *s.MaxLength
		if !pattern.MatchString(text) && !tooShort && !tooLong {
			g.set(path, PatternMismatch, v.detail, text)
		}
	}
	return nil
}

// patternBreakers are the edits of a valid string that patterns most often
// exist to refuse; those a pattern accepts are skipped.
func patternBreakers(valid string) []variant {
	half := len(valid) / 2
	return []variant{
		{"empty", ""},
		{"leading-space", " " + valid},
		{"trailing-space", valid + " "},
		{"inner-space", valid[:half] + " " + valid[half:]},
		{"upper-case", strings.ToUpper(valid)},
		{"leading-hyphen", "-" + valid},
		{"trailing-dot", valid + "."},
		{"underscore", valid + "_"},
		{"slash", valid + "/"},
		{"non-ascii", valid + "é"},
	}
}

// lengthVariant returns a string of n characters that matches pattern if
// one of its shapes does: letters, or dot-separated labels of letters (a
// host name).
func lengthVariant(n int, pattern *regexp.Regexp) string {
	letters := strings.Repeat("a", n)
	labels := []byte(letters)
	for i := 31; i < n-1; i += 32 {
		labels[i] = '.'
	}
	for _, s := range []string{letters, string(labels)} {
		if pattern == nil || pattern.MatchString(s) {
			return s
		}
	}
	return letters
}

// badNames adds names that the API server refuses (not a DNS-1123
// subdomain) or that nameRule, the kind's CUE #Name, refuses; the rest are
// valid names for the kind and are skipped.
func (g *generator) badNames(nameRule cue.Value) error {
	valid := g.base.GetName()
	ruleRefuses := func(name string) bool {
		return nameRule.Exists() && nameRule.Unify(nameRule.Context().Encode(name)).Validate(cue.Concrete(true)) != nil
	}
	if ruleRefuses(valid) {
		return fmt.Errorf("#Name refuses the base's name %q", valid)
	}
	pad := func(n int) string { return valid + "-" + strings.Repeat("a", n-len(valid)-1) }
	for _, v := range []variant{
		{"upper-case", strings.ToUpper(valid)},
		{"underscore", strings.ReplaceAll(valid, "-", "_")},
		{"dot", valid + ".v2"},
		{"leading-digit", "1" + valid},
		{"46-characters", pad(46)},
		{"64-characters", pad(64)},
		{"254-characters", pad(254)},
	} {
		name := v.value.(string)
		if len(validation.IsDNS1123Subdomain(name)) > 0 || ruleRefuses(name) {
			cr := g.base.DeepCopy()
			cr.SetName(name)
			g.add([]string{"metadata", "name"}, BadName, v.detail, cr)
		}
	}
	return nil
}
