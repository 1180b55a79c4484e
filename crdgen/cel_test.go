package crdgen

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/runtime/schema"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// celCheck runs the CRD's validation rules on obj as the API server does,
// after its defaulting, with old as the stored object of an update (nil
// for a create), and returns the errors as one string ("" when it passes).
func celCheck(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, obj, old map[string]any) string {
	t.Helper()
	s := crdStructural(t, crd)
	defaulting.Default(obj, s)
	var oldObj any
	if old != nil {
		defaulting.Default(old, s)
		oldObj = old
	}
	v := cel.NewValidator(s, true, celconfig.PerCallLimit)
	if v == nil {
		t.Fatal("the CRD has no validation rules")
	}
	errs, _ := v.Validate(context.Background(), nil, s, obj, oldObj, celconfig.RuntimeCELCostBudget)
	if len(errs) == 0 {
		return ""
	}
	return errs.ToAggregate().Error()
}

// widgetCR is a valid Widget with spec fields added.
func widgetCR(extra map[string]any) map[string]any {
	spec := map[string]any{"name": "w1", "owner": "me", "target": int64(80)}
	maps.Copy(spec, extra)
	return map[string]any{
		"apiVersion": "example.com/v1beta1", "kind": "Widget",
		"metadata": map[string]any{"name": "w"},
		"spec":     spec,
	}
}

func TestCELRules(t *testing.T) {
	crd := crdWidget(t)
	obj := func(k string, v any) map[string]any { return widgetCR(map[string]any{k: v}) }
	hosts := func(h ...map[string]any) []any {
		out := make([]any, len(h))
		for i := range h {
			out[i] = h[i]
		}
		return out
	}
	for _, tc := range []struct {
		name string
		cr   map[string]any
		// want is in the refusal; "" when the CR is valid.
		want string
	}{
		{"valid", widgetCR(nil), ""},
		{"max at min", obj("scale", map[string]any{"min": int64(2), "max": int64(2)}), ""},
		{"max below min", obj("scale", map[string]any{"min": int64(3), "max": int64(2)}), "spec.scale.max: invalid value (out of bound >=spec.scale.min)"},
		{"max below the default min", obj("scale", map[string]any{"max": int64(0)}), "spec.scale.max"},
		{"hard below soft, from a definition", obj("quotas", map[string]any{"cpu": map[string]any{"soft": int64(5), "hard": int64(3)}}), "spec.quotas[*].hard: invalid value (out of bound >=spec.quotas[*].soft)"},
		{"hard above soft", obj("quotas", map[string]any{"cpu": map[string]any{"soft": int64(1), "hard": int64(3)}}), ""},
		{"prefix", obj("prefix", "w-1"), ""},
		{"no prefix", obj("prefix", "x-1"), `spec.prefix: invalid value (does not satisfy strings.HasPrefix("w-"))`},
		{"window low range", obj("window", int64(3)), ""},
		{"window high range", obj("window", int64(12)), ""},
		{"window gap", obj("window", int64(7)), "spec.window: invalid value (does not satisfy int & >=1 & <=5 | int & >=10)"},
		{"host suffix", obj("hosts", hosts(map[string]any{"name": "a.example.com", "alias": "b.example.com"})), ""},
		{"host without suffix", obj("hosts", hosts(map[string]any{"name": "a.example.org"})), `spec.hosts[].name: invalid value (does not satisfy strings.HasSuffix(".example.com"))`},
		{"alias equal to name", obj("hosts", hosts(map[string]any{"name": "a.example.com", "alias": "a.example.com"})), "spec.hosts[].alias: invalid value (does not satisfy !=spec.hosts[].name)"},
		{"unique tiers", obj("tiers", []any{map[string]any{"weight": int64(1)}, map[string]any{"weight": int64(2)}}), ""},
		{"repeated tier", obj("tiers", []any{map[string]any{"weight": int64(1)}, map[string]any{"weight": int64(1)}}), "spec.tiers: invalid value (does not satisfy list.UniqueItems())"},
		{"a tier above the cap, from inside a list", widgetCR(map[string]any{"maxWeight": int64(5), "tiers": []any{map[string]any{"weight": int64(1)}, map[string]any{"weight": int64(6)}}}), "spec.tiers[].weight: invalid value (out of bound <=spec.maxWeight)"},
		{"tiers below the cap", widgetCR(map[string]any{"maxWeight": int64(5), "tiers": []any{map[string]any{"weight": int64(5)}}}), ""},
		// Fields a comprehension adds for some values of a sibling.
		{"backup off", obj("backup", map[string]any{}), ""},
		{"backup on with a schedule", obj("backup", map[string]any{"enabled": true, "schedule": "daily"}), ""},
		{"backup on without a schedule", obj("backup", map[string]any{"enabled": true}), "spec.backup.schedule: field is required but not present (when spec.backup.enabled is true)"},
		{"a schedule without backup", obj("backup", map[string]any{"schedule": "daily"}), "spec.backup.schedule: field not allowed (unless spec.backup.enabled is true)"},
		{"a custom engine with an image", obj("engine", map[string]any{"kind": "custom", "image": "x"}), ""},
		{"a custom engine without an image", obj("engine", map[string]any{"kind": "custom"}), `spec.engine.image: field is required but not present (when spec.engine.kind is "custom")`},
		{"an image for the builtin engine", obj("engine", map[string]any{"image": "x"}), `spec.engine.image: field not allowed (unless spec.engine.kind is "custom")`},
		{"power on by default needs watts", obj("power", map[string]any{}), "spec.power.watts: field is required but not present (when spec.power.switchedOn is true)"},
		{"power off needs no watts", obj("power", map[string]any{"switchedOn": false}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := celCheck(t, crd, tc.cr, nil)
			switch {
			case tc.want == "" && got != "":
				t.Errorf("refused: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("got %q, want a refusal with %q", got, tc.want)
			}
		})
	}
}

func TestCELImmutable(t *testing.T) {
	crd := crdWidget(t)
	for _, tc := range []struct {
		name     string
		old, new map[string]any
		want     string
	}{
		{"unchanged", map[string]any{"serial": "s1"}, map[string]any{"serial": "s1"}, ""},
		{"changed", map[string]any{"serial": "s1"}, map[string]any{"serial": "s2"}, "spec.serial: is immutable"},
		{"added", nil, map[string]any{"serial": "s1"}, "spec.serial: is immutable"},
		{"removed", map[string]any{"serial": "s1"}, nil, "spec.serial: is immutable"},
		{"other fields change", map[string]any{"owner": "me"}, map[string]any{"owner": "you"}, ""},
		{"defaulted, then changed", nil, map[string]any{"zone": "b"}, "spec.zone: is immutable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := celCheck(t, crd, widgetCR(tc.new), widgetCR(tc.old))
			switch {
			case tc.want == "" && got != "":
				t.Errorf("refused: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("got %q, want a refusal with %q", got, tc.want)
			}
		})
	}
	// A create has no old object: any value goes.
	if got := celCheck(t, crd, widgetCR(map[string]any{"serial": "s1", "zone": "c"}), nil); got != "" {
		t.Errorf("create refused: %s", got)
	}
}

// The rule of a kind's #Name is checked at the root: kubectl apply refuses
// a name the template would refuse, naming metadata.name.
func TestCELNameRules(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind, name, want string
	}{
		{"WebApp", "web-app", ""},
		{"WebApp", "web.app", `metadata.name: invalid value (out of bound =~"^[a-z]([-a-z0-9]*[a-z0-9])?$")`},
		{"WebApp", "1web", "metadata.name: invalid value (out of bound"},
		{"Database", strings.Repeat("d", 45), ""},
		{"Database", strings.Repeat("d", 50), "metadata.name: invalid value (does not satisfy strings.MaxRunes(45))"},
	} {
		var gvk schema.GroupVersionKind
		for _, k := range lib.Kinds() {
			if k.GVK.Kind == tc.kind {
				gvk = k.GVK
			}
		}
		crd, err := Generate(lib.Kind(gvk))
		if err != nil {
			t.Fatal(err)
		}
		cr := map[string]any{"apiVersion": gvk.GroupVersion().String(), "kind": gvk.Kind, "metadata": map[string]any{"name": tc.name}}
		got := celCheck(t, crd, cr, nil)
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%s %s refused: %s", tc.kind, tc.name, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s %s: got %q, want a refusal with %q", tc.kind, tc.name, got, tc.want)
		}
		if rules := crdRoot(t, crd).XValidations; len(rules) == 0 || rules[0].FieldPath != ".metadata.name" {
			t.Errorf("%s: root rules %+v, want them reported at .metadata.name", tc.kind, rules)
		}
	}
}

// Every constraint of the shipped kinds is enforced at admission, with no
// bound the CUE schema does not state: cuerator crds warns of nothing.
func TestCELShippedKindsHaveNoWarnings(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range lib.Kinds() {
		_, warnings, err := GenerateWithWarnings(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range warnings {
			t.Errorf("%s: %s", k.GVK.Kind, w)
		}
	}
}

func TestCELWarnings(t *testing.T) {
	lib, err := render.Load(os.DirFS("testdata/crd/widgets"))
	if err != nil {
		t.Fatal(err)
	}
	_, warnings, err := GenerateWithWarnings(lib.Kinds()[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range warnings {
		got[w.Path] += w.Message + "\n"
	}
	const cel, size = "so that its CEL rules fit the API server's cost budget", "so that a CR's size, and the work its template does on it, stay bounded"
	want := map[string][]string{
		// No CEL form: named, and said to be checked elsewhere.
		"spec.address": {"net.IPv4() is not checked at admission (it has no CEL form); cuerator and cue vet check it", "the CRD limits it to 4096 characters " + size},
		// Default bounds, where a rule's cost needs them.
		"spec.hosts":        {"the CRD limits it to 256 items " + cel},
		"spec.hosts[].name": {"the CRD limits it to 4096 characters " + cel},
		"spec.prefix":       {"the CRD limits it to 4096 characters " + cel},
		"spec.quotas":       {"the CRD limits it to 256 keys " + cel},
		"spec.tiers":        {"the CRD limits it to 256 items " + cel},
		// And on every other string, list and map the schema leaves
		// unbounded (enums are bounded by their values).
		"spec.aliases":         {"the CRD limits it to 256 items " + size},
		"spec.aliases[]":       {"the CRD limits it to 4096 characters " + size},
		"spec.backup.schedule": {"4096 characters " + size},
		"spec.config.known":    {"4096 characters " + size},
		"spec.engine.image":    {"4096 characters " + size},
		"spec.hosts[].alias":   {"4096 characters " + size},
		"spec.labels":          {"the CRD limits it to 256 keys " + size, "add struct.MaxFields(n) to agree"},
		"spec.labels[*]":       {"4096 characters " + size},
		"spec.limits":          {"256 keys " + size},
		"spec.nickname":        {"4096 characters " + size},
		"spec.notRoot":         {"4096 characters " + size},
		"spec.owner":           {"4096 characters " + size, "add strings.MaxRunes(n) to agree"},
		"spec.ports[].name":    {"4096 characters " + size},
		"spec.serial":          {"4096 characters " + size},
		"spec.tags":            {"256 items " + size, "add list.MaxItems(n) to agree"},
		"spec.tags[]":          {"4096 characters " + size},
		"spec.tls.secret":      {"4096 characters " + size},
		"spec.zone":            {"4096 characters " + size},
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("warnings about %v, want %v:\n%v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), warnings)
	}
	for path, ws := range want {
		for _, w := range ws {
			if !strings.Contains(got[path], w) {
				t.Errorf("%s: %q, want %q", path, got[path], w)
			}
		}
	}
	root := crdRoot(t, crdWidget(t))
	if p := crdProp(t, root, "spec.hosts"); p.MaxItems == nil || *p.MaxItems != defaultMaxItems {
		t.Errorf("spec.hosts maxItems %v", p.MaxItems)
	}
	// A bound the schema states is kept.
	if p := crdProp(t, root, "spec.ports"); *p.MaxItems != 8 {
		t.Errorf("spec.ports maxItems %v", *p.MaxItems)
	}
	if p := crdProp(t, root, "spec.name"); *p.MaxLength != 63 {
		t.Errorf("spec.name maxLength %v", *p.MaxLength)
	}
	// An enum needs none.
	if p := crdProp(t, root, "spec.mode"); p.MaxLength != nil {
		t.Errorf("spec.mode (an enum) maxLength %v", *p.MaxLength)
	}
	// Every list, string and map of the spec is bounded.
	if p := crdProp(t, root, "spec.tags"); p.MaxItems == nil || *p.MaxItems != defaultMaxItems {
		t.Errorf("spec.tags maxItems %v", p.MaxItems)
	}
	if p := crdProp(t, root, "spec.tags[]"); p.MaxLength == nil || *p.MaxLength != defaultMaxLength {
		t.Errorf("spec.tags[] maxLength %v", p.MaxLength)
	}
}

func TestCELErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"immutable in a list", `{x?: [...{a: string @immutable()}]}`, []string{"spec.x[].a", "@immutable() cannot be checked inside a list"}},
		{"immutable with arguments", `{x?: string @immutable(yes)}`, []string{"spec.x", "@immutable() takes no arguments"}},
		{"name not a string", `{}
#Name: int`, []string{"#Name", "must be a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(crdKindFromCUE(t, "#Spec: "+tc.spec+"\n#Status: {}\n"))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
