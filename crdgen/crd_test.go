package crdgen

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"cuelang.org/go/cue/cuecontext"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

func crdMemcached(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	k := lib.Kind(schema.GroupVersionKind{Group: "cache.example.com", Version: "v1alpha1", Kind: "Memcached"})
	if k == nil {
		t.Fatal("no Memcached kind in schemas")
	}
	crd, err := Generate(k)
	if err != nil {
		t.Fatal(err)
	}
	return crd
}

func crdWidget(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	lib, err := render.Load(os.DirFS("testdata/crd/widgets"))
	if err != nil {
		t.Fatal(err)
	}
	crds, err := GenerateAll(lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 1 {
		t.Fatalf("got %d CRDs, want 1", len(crds))
	}
	return crds[0]
}

func crdRoot(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("got %d versions, want 1", len(crd.Spec.Versions))
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// crdProp walks a schema: "spec", "status.conditions[]", "spec.limits[*]".
func crdProp(t *testing.T, s *apiextensionsv1.JSONSchemaProps, path string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	cur := *s
	for _, part := range strings.Split(path, ".") {
		var suffixes []string
		for {
			if strings.HasSuffix(part, "[]") {
				suffixes = append([]string{"[]"}, suffixes...)
				part = strings.TrimSuffix(part, "[]")
			} else if strings.HasSuffix(part, "[*]") {
				suffixes = append([]string{"[*]"}, suffixes...)
				part = strings.TrimSuffix(part, "[*]")
			} else {
				break
			}
		}
		next, ok := cur.Properties[part]
		if !ok {
			t.Fatalf("%s: no property %q (have %v)", path, part, crdKeys(cur.Properties))
		}
		cur = next
		for _, sfx := range suffixes {
			switch sfx {
			case "[]":
				if cur.Items == nil || cur.Items.Schema == nil {
					t.Fatalf("%s: %s has no items", path, part)
				}
				cur = *cur.Items.Schema
			case "[*]":
				if cur.AdditionalProperties == nil || cur.AdditionalProperties.Schema == nil {
					t.Fatalf("%s: %s has no additionalProperties", path, part)
				}
				cur = *cur.AdditionalProperties.Schema
			}
		}
	}
	return cur
}

func crdKeys(m map[string]apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func crdJSON(t *testing.T, j *apiextensionsv1.JSON) string {
	t.Helper()
	if j == nil {
		return "<none>"
	}
	return string(j.Raw)
}

func crdEnum(s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for _, e := range s.Enum {
		out = append(out, string(e.Raw))
	}
	return out
}

// crdInternal converts the CRD's schema to the API server's internal type.
func crdInternal(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *apiextensions.JSONSchemaProps {
	t.Helper()
	out := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crdRoot(t, crd), out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func crdStructural(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *structuralschema.Structural {
	t.Helper()
	s, err := structuralschema.NewStructural(crdInternal(t, crd))
	if err != nil {
		t.Fatalf("not structural: %v", err)
	}
	if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
		t.Fatalf("not structural: %v", errs.ToAggregate())
	}
	return s
}

func TestCRDMemcached(t *testing.T) {
	crd := crdMemcached(t)

	if crd.Name != "memcacheds.cache.example.com" || crd.Spec.Group != "cache.example.com" {
		t.Errorf("name %q group %q", crd.Name, crd.Spec.Group)
	}
	n := crd.Spec.Names
	if n.Plural != "memcacheds" || n.Singular != "memcached" || n.Kind != "Memcached" || n.ListKind != "MemcachedList" {
		t.Errorf("names: %+v", n)
	}
	if !reflect.DeepEqual(n.Categories, []string{"cuerator"}) {
		t.Errorf("categories: %v", n.Categories)
	}
	if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("scope %q", crd.Spec.Scope)
	}
	v := crd.Spec.Versions[0]
	if v.Name != "v1alpha1" || !v.Served || !v.Storage {
		t.Errorf("version %q served=%v storage=%v", v.Name, v.Served, v.Storage)
	}
	if v.Subresources == nil || v.Subresources.Status == nil || v.Subresources.Scale == nil {
		t.Fatalf("subresources: %+v", v.Subresources)
	}
	if sc := v.Subresources.Scale; sc.SpecReplicasPath != ".spec.size" || sc.StatusReplicasPath != ".status.replicas" ||
		sc.LabelSelectorPath == nil || *sc.LabelSelectorPath != ".status.selector" {
		t.Errorf("scale subresource: %+v", sc)
	}
	var cols []string
	for _, c := range v.AdditionalPrinterColumns {
		cols = append(cols, c.Name+":"+c.Type+":"+c.JSONPath)
	}
	wantCols := []string{"Size:integer:.spec.size", `Ready:string:.status.conditions[?(@.type=="Ready")].status`, "Age:date:.metadata.creationTimestamp"}
	if !reflect.DeepEqual(cols, wantCols) {
		t.Errorf("printer columns:\n got %v\nwant %v", cols, wantCols)
	}

	root := crdRoot(t, crd)
	if root.Type != "object" || !reflect.DeepEqual(root.Required, []string{"spec"}) {
		t.Errorf("root: type %q required %v", root.Type, root.Required)
	}
	for _, f := range []string{"apiVersion", "kind"} {
		if p := crdProp(t, root, f); p.Type != "string" {
			t.Errorf("%s: type %q", f, p.Type)
		}
	}
	if p := crdProp(t, root, "metadata"); p.Type != "object" {
		t.Errorf("metadata: type %q", p.Type)
	}

	spec := crdProp(t, root, "spec")
	if spec.Type != "object" || !reflect.DeepEqual(spec.Required, []string{"size"}) {
		t.Errorf("spec: type %q required %v", spec.Type, spec.Required)
	}
	if spec.Description == "" || spec.XPreserveUnknownFields != nil {
		t.Errorf("spec: description %q preserve-unknown %v", spec.Description, spec.XPreserveUnknownFields)
	}
	size := crdProp(t, root, "spec.size")
	if size.Type != "integer" || size.Minimum == nil || *size.Minimum != 1 || size.Maximum == nil || *size.Maximum != 10 ||
		size.ExclusiveMinimum || size.ExclusiveMaximum || size.Default != nil {
		t.Errorf("spec.size: %+v", size)
	}
	if size.Description != "size is the number of memcached pods." {
		t.Errorf("spec.size description %q", size.Description)
	}
	image := crdProp(t, root, "spec.image")
	if image.Type != "string" || crdJSON(t, image.Default) != `"memcached:1.6"` || image.Enum != nil {
		t.Errorf("spec.image: type %q default %s enum %v", image.Type, crdJSON(t, image.Default), crdEnum(image))
	}
	if image.Description != "image is the memcached container image." {
		t.Errorf("spec.image description %q", image.Description)
	}

	status := crdProp(t, root, "status")
	if status.Type != "object" || len(status.Required) != 0 {
		t.Errorf("status: type %q required %v", status.Type, status.Required)
	}
	nodes := crdProp(t, root, "status.nodes")
	if nodes.Type != "array" || nodes.Items.Schema.Type != "string" || nodes.Default != nil {
		t.Errorf("status.nodes: %+v", nodes)
	}
	if nodes.Description != "nodes are the names of the memcached pods." {
		t.Errorf("status.nodes description %q", nodes.Description)
	}
	// Inlined from common.#Status, which #Status embeds.
	if og := crdProp(t, root, "status.observedGeneration"); og.Type != "integer" ||
		og.Description != "observedGeneration is the CR generation the status describes." {
		t.Errorf("status.observedGeneration: %+v", og)
	}
	cond := crdProp(t, root, "status.conditions[]")
	if cond.Type != "object" {
		t.Errorf("status.conditions items: type %q", cond.Type)
	}
	if got, want := crdKeys(cond.Properties), []string{"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}; !crdSameSet(got, want) {
		t.Errorf("condition fields: got %v want %v", got, want)
	}
	if want := []string{"lastTransitionTime", "message", "reason", "status", "type"}; !reflect.DeepEqual(cond.Required, want) {
		t.Errorf("condition required: got %v want %v", cond.Required, want)
	}
	if got := crdEnum(crdProp(t, root, "status.conditions[].status")); !reflect.DeepEqual(got, []string{`"True"`, `"False"`, `"Unknown"`}) {
		t.Errorf("condition status enum: %v", got)
	}
	if p := crdProp(t, root, "status.conditions[].observedGeneration"); p.Type != "integer" {
		t.Errorf("condition observedGeneration: %q", p.Type)
	}
	if p := crdProp(t, root, "status.inventory[].id"); p.Type != "string" || p.Description != "id is namespace_name_group_kind." {
		t.Errorf("inventory id: %+v", p)
	}

	crdStructural(t, crd)

	out, err := MarshalYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"$ref", "creationTimestamp: null", "oneOf", "definitions"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("YAML contains %q:\n%s", bad, out)
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["status"]; ok {
		t.Errorf("YAML has a top-level status:\n%s", out)
	}
	// The YAML is the CRD: it reads back to the same object.
	var back apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(out, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(crdRoot(t, &back), root) {
		t.Errorf("schema does not survive a YAML round trip")
	}
}

// TestCRDMemcachedAPIServer runs what the API server does with a CR of the
// generated CRD: prune unknown fields (what kubectl's strict field
// validation reports), default, validate.
func TestCRDMemcachedAPIServer(t *testing.T) {
	crd := crdMemcached(t)
	s := crdStructural(t, crd)

	cr := map[string]any{
		"apiVersion": "cache.example.com/v1alpha1",
		"kind":       "Memcached",
		"metadata":   map[string]any{"name": "m", "namespace": "default"},
		"spec":       map[string]any{"size": int64(3), "colour": "red"},
		"status":     map[string]any{"nodes": []any{"a"}, "extra": true},
	}
	unknown := pruning.PruneWithOptions(cr, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if want := []string{"spec.colour", "status.extra"}; !crdSameSet(unknown, want) {
		t.Errorf("unknown fields: got %v, want %v", unknown, want)
	}
	defaulting.Default(cr, s)
	if got := cr["spec"].(map[string]any)["image"]; got != "memcached:1.6" {
		t.Errorf("defaulted spec.image = %v", got)
	}

	validator, _, err := apiservervalidation.NewSchemaValidator(crdInternal(t, crd))
	if err != nil {
		t.Fatal(err)
	}
	if errs := apiservervalidation.ValidateCustomResource(nil, cr, validator); len(errs) > 0 {
		t.Errorf("valid CR rejected: %v", errs.ToAggregate())
	}
	for _, tc := range []struct {
		spec map[string]any
		want string
	}{
		{map[string]any{"size": int64(11)}, "spec.size"},
		{map[string]any{"size": int64(0)}, "spec.size"},
		{map[string]any{"size": "3"}, "spec.size"},
		{map[string]any{"image": "x"}, "spec.size"},
	} {
		bad := map[string]any{"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "spec": tc.spec}
		errs := apiservervalidation.ValidateCustomResource(nil, bad, validator)
		if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
			t.Errorf("spec %v: got %v, want an error about %s", tc.spec, errs.ToAggregate(), tc.want)
		}
	}
}

func TestCRDWidget(t *testing.T) {
	crd := crdWidget(t)
	root := crdRoot(t, crd)

	if crd.Spec.Scope != apiextensionsv1.ClusterScoped || !reflect.DeepEqual(crd.Spec.Names.ShortNames, []string{"wd"}) {
		t.Errorf("scope %q shortNames %v", crd.Spec.Scope, crd.Spec.Names.ShortNames)
	}
	if c := crd.Spec.Versions[0].AdditionalPrinterColumns; len(c) != 1 || c[0].Description != "engine mode" || c[0].Priority != 1 {
		t.Errorf("printer columns: %+v", c)
	}

	spec := crdProp(t, root, "spec")
	// Required: regular fields without a default, and `!` fields. Not the
	// defaulted (mode, ratio, tls, tags) nor the optional ones.
	if want := []string{"name", "owner", "target"}; !reflect.DeepEqual(spec.Required, want) {
		t.Errorf("spec.required: got %v want %v", spec.Required, want)
	}
	if spec.Default != nil {
		t.Errorf("spec has required fields but a default %s", crdJSON(t, spec.Default))
	}

	// enum from a referenced disjunction, with a default.
	mode := crdProp(t, root, "spec.mode")
	if mode.Type != "string" || !reflect.DeepEqual(crdEnum(mode), []string{`"fast"`, `"slow"`}) || crdJSON(t, mode.Default) != `"fast"` {
		t.Errorf("spec.mode: type %q enum %v default %s", mode.Type, crdEnum(mode), crdJSON(t, mode.Default))
	}
	if mode.Description != "mode picks the engine." {
		t.Errorf("spec.mode description %q", mode.Description)
	}
	// pattern and maxLength.
	name := crdProp(t, root, "spec.name")
	if name.Pattern != "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" || name.MaxLength == nil || *name.MaxLength != 63 {
		t.Errorf("spec.name: pattern %q maxLength %v", name.Pattern, name.MaxLength)
	}
	// int | string.
	target := crdProp(t, root, "spec.target")
	if !target.XIntOrString || target.Type != "" || target.OneOf != nil || target.AnyOf != nil {
		t.Errorf("spec.target: %+v", target)
	}
	// map.
	labels := crdProp(t, root, "spec.labels")
	if labels.Type != "object" || labels.Properties != nil || labels.AdditionalProperties == nil ||
		labels.AdditionalProperties.Schema.Type != "string" || labels.Default != nil {
		t.Errorf("spec.labels: %+v", labels)
	}
	// a map of closed structs stays closed.
	lim := crdProp(t, root, "spec.limits[*]")
	if lim.Type != "object" || lim.XPreserveUnknownFields != nil || !reflect.DeepEqual(lim.Required, []string{"max"}) ||
		crdJSON(t, crdProp(t, root, "spec.limits[*].min").Default) != "0" {
		t.Errorf("spec.limits values: %+v", lim)
	}
	// nested list of structs.
	ports := crdProp(t, root, "spec.ports")
	if ports.Type != "array" || ports.MaxItems == nil || *ports.MaxItems != 8 {
		t.Errorf("spec.ports: %+v", ports)
	}
	port := crdProp(t, root, "spec.ports[]")
	if port.Type != "object" || !reflect.DeepEqual(port.Required, []string{"containerPort", "name"}) || port.XPreserveUnknownFields != nil {
		t.Errorf("spec.ports items: required %v preserve %v", port.Required, port.XPreserveUnknownFields)
	}
	cp := crdProp(t, root, "spec.ports[].containerPort")
	if cp.Type != "integer" || *cp.Minimum != 0 || !cp.ExclusiveMinimum || *cp.Maximum != 65536 || !cp.ExclusiveMaximum {
		t.Errorf("containerPort: %+v", cp)
	}
	if cp.Description != "containerPort is the port number." {
		t.Errorf("containerPort description %q", cp.Description)
	}
	proto := crdProp(t, root, "spec.ports[].protocol")
	if crdJSON(t, proto.Default) != `"TCP"` || !reflect.DeepEqual(crdEnum(proto), []string{`"TCP"`, `"UDP"`}) {
		t.Errorf("protocol: default %s enum %v", crdJSON(t, proto.Default), crdEnum(proto))
	}
	if pn := crdProp(t, root, "spec.ports[].name"); pn.MinLength == nil || *pn.MinLength != 1 {
		t.Errorf("port name: %+v", pn)
	}
	// open structs keep unknown fields; `_` takes anything.
	extra := crdProp(t, root, "spec.extra")
	if extra.Type != "object" || extra.XPreserveUnknownFields == nil || !*extra.XPreserveUnknownFields {
		t.Errorf("spec.extra: %+v", extra)
	}
	config := crdProp(t, root, "spec.config")
	if config.XPreserveUnknownFields == nil || crdProp(t, root, "spec.config.known").Type != "string" {
		t.Errorf("spec.config: %+v", config)
	}
	if a := crdProp(t, root, "spec.anything"); a.Type != "" || a.XPreserveUnknownFields == nil {
		t.Errorf("spec.anything: %+v", a)
	}
	// optional: neither required nor defaulted.
	rep := crdProp(t, root, "spec.replicas")
	if rep.Type != "integer" || *rep.Minimum != 0 || *rep.Maximum != 100 || rep.Default != nil {
		t.Errorf("spec.replicas: %+v", rep)
	}
	// a bounded number with a default.
	ratio := crdProp(t, root, "spec.ratio")
	if ratio.Type != "number" || *ratio.Minimum != 0 || !ratio.ExclusiveMinimum || *ratio.Maximum != 1 || crdJSON(t, ratio.Default) != "0.5" {
		t.Errorf("spec.ratio: %+v default %s", ratio, crdJSON(t, ratio.Default))
	}
	// an open list defaults to [] in CUE, and so in the CRD.
	if tags := crdProp(t, root, "spec.tags"); crdJSON(t, tags.Default) != "[]" || tags.Items.Schema.Type != "string" {
		t.Errorf("spec.tags: %+v", tags)
	}
	if al := crdProp(t, root, "spec.aliases"); al.XListType == nil || *al.XListType != "set" {
		t.Errorf("spec.aliases: %+v", al)
	}
	if nick := crdProp(t, root, "spec.nickname"); !nick.Nullable || nick.Type != "string" {
		t.Errorf("spec.nickname: %+v", nick)
	}
	if nr := crdProp(t, root, "spec.notRoot"); nr.Not == nil || !reflect.DeepEqual(crdEnum(*nr.Not), []string{`"root"`}) {
		t.Errorf("spec.notRoot: %+v", nr)
	}
	// a struct whose fields are all optional or defaulted defaults to {},
	// so that the API server fills the nested defaults.
	tls := crdProp(t, root, "spec.tls")
	if crdJSON(t, tls.Default) != "{}" || len(tls.Required) != 0 || crdJSON(t, crdProp(t, root, "spec.tls.enabled").Default) != "false" {
		t.Errorf("spec.tls: %+v", tls)
	}

	if phase := crdProp(t, root, "status.phase"); !reflect.DeepEqual(crdEnum(phase), []string{`"Pending"`, `"Ready"`}) {
		t.Errorf("status.phase: %v", crdEnum(phase))
	}
	if counts := crdProp(t, root, "status.counts[*]"); counts.Type != "integer" {
		t.Errorf("status.counts: %+v", counts)
	}

	s := crdStructural(t, crd)
	cr := map[string]any{
		"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
		"spec": map[string]any{
			"name": "w1", "owner": "me", "target": "http",
			"ports":  []any{map[string]any{"name": "http", "containerPort": int64(80), "bogus": 1}},
			"extra":  map[string]any{"anything": map[string]any{"goes": true}},
			"config": map[string]any{"known": "k", "unknown": "kept"},
			"limits": map[string]any{"cpu": map[string]any{"max": int64(2), "bogus": 1}},
		},
	}
	unknown := pruning.PruneWithOptions(cr, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if want := []string{"spec.ports[0].bogus", "spec.limits.cpu.bogus"}; !crdSameSet(unknown, want) {
		t.Errorf("pruned: got %v want %v", unknown, want)
	}
	defaulting.Default(cr, s)
	got, _ := json.Marshal(cr["spec"])
	want := `{"config":{"known":"k","unknown":"kept"},"extra":{"anything":{"goes":true}},"limits":{"cpu":{"max":2,"min":0}},` +
		`"maxWeight":100,"mode":"fast","name":"w1","owner":"me","ports":[{"containerPort":80,"name":"http","protocol":"TCP"}],` +
		`"ratio":0.5,"tags":[],"target":"http","tls":{"enabled":false},"zone":"a"}`
	if string(got) != want {
		t.Errorf("defaulted spec:\n got %s\nwant %s", got, want)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(crdInternal(t, crd))
	if err != nil {
		t.Fatal(err)
	}
	if errs := apiservervalidation.ValidateCustomResource(nil, cr, validator); len(errs) > 0 {
		t.Errorf("valid CR rejected: %v", errs.ToAggregate())
	}
	for field, bad := range map[string]any{"mode": "medium", "name": "Not_A_Label", "target": true, "notRoot": "root", "ratio": 1.0} {
		spec := map[string]any{"name": "w1", "owner": "me", "target": int64(80)}
		spec[field] = bad
		errs := apiservervalidation.ValidateCustomResource(nil, map[string]any{"spec": spec}, validator)
		if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "spec."+field) {
			t.Errorf("spec.%s=%v: got %v", field, bad, errs.ToAggregate())
		}
	}
}

func crdSameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestCRDYAMLStable(t *testing.T) {
	gen := func() []byte {
		lib, err := render.Load(schemas.FS)
		if err != nil {
			t.Fatal(err)
		}
		crds, err := GenerateAll(lib)
		if err != nil {
			t.Fatal(err)
		}
		crds = append(crds, crdWidget(t))
		out, err := MarshalYAML(crds)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := gen()
	for range 3 {
		if again := gen(); !bytes.Equal(first, again) {
			t.Fatalf("output changed between runs:\n%s\n---- vs ----\n%s", first, again)
		}
	}
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(first), "\n---\n")
	if want := len(lib.Kinds()) + 1; len(docs) != want {
		t.Fatalf("got %d YAML documents, want %d (one per kind and the widget)", len(docs), want)
	}
	for i, d := range docs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict([]byte(d), &crd); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if crd.Kind != "CustomResourceDefinition" || crd.APIVersion != "apiextensions.k8s.io/v1" {
			t.Errorf("document %d: %s %s", i, crd.APIVersion, crd.Kind)
		}
	}
}

// crdKindFromCUE builds a Kind around an inline api package.
func crdKindFromCUE(t *testing.T, src string) *render.Kind {
	t.Helper()
	api := cuecontext.New().CompileString(src)
	if err := api.Err(); err != nil {
		t.Fatal(err)
	}
	return &render.Kind{
		Dir:        "things",
		GVK:        schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Thing"},
		Plural:     "things",
		Namespaced: true,
		API:        api,
	}
}

func TestCRDShapes(t *testing.T) {
	k := crdKindFromCUE(t, `
import (
	"struct"
	"time"
)

#Level: "debug" | "info"
#Node: {name: string}
#Spec: {
	replicas: int & >=1 & <=10 | *3
	level:    #Level | *"info"
	mode:     "fixed"
	opts:     {a: int} | *{a: 1}
	deep:     {inner: {x: *1 | int}}
	maybe?:   null | "a" | "b"
	either:   int & >5 | 0 | *0
	nodes?:   [...#Node] | *[]
	sel?:     {[string]: string} & struct.MaxFields(3)
	"quoted-name"?: string
	lots: [...int] | *[1, 2]
	num:  float | *1.5
	huge?: int & >=-2147483648 & <=2147483647 & >=0
	since?: string & time.Time()
}
#Status: {...}
`)
	crd, err := Generate(k)
	if err != nil {
		t.Fatal(err)
	}
	root := crdRoot(t, crd)
	spec := crdProp(t, root, "spec")
	if len(root.Required) != 0 || len(spec.Required) != 0 || crdJSON(t, spec.Default) != "{}" {
		t.Errorf("nothing in spec needs input: root required %v, spec required %v default %s", root.Required, spec.Required, crdJSON(t, spec.Default))
	}
	r := crdProp(t, root, "spec.replicas")
	if r.Type != "integer" || *r.Minimum != 1 || *r.Maximum != 10 || crdJSON(t, r.Default) != "3" {
		t.Errorf("replicas: %+v default %s", r, crdJSON(t, r.Default))
	}
	if l := crdProp(t, root, "spec.level"); !reflect.DeepEqual(crdEnum(l), []string{`"debug"`, `"info"`}) || crdJSON(t, l.Default) != `"info"` {
		t.Errorf("level: enum %v default %s", crdEnum(l), crdJSON(t, l.Default))
	}
	if m := crdProp(t, root, "spec.mode"); !reflect.DeepEqual(crdEnum(m), []string{`"fixed"`}) || crdJSON(t, m.Default) != `"fixed"` {
		t.Errorf("mode: enum %v default %s", crdEnum(m), crdJSON(t, m.Default))
	}
	if o := crdProp(t, root, "spec.opts"); crdJSON(t, o.Default) != `{"a":1}` || !reflect.DeepEqual(o.Required, []string{"a"}) {
		t.Errorf("opts: default %s required %v", crdJSON(t, o.Default), o.Required)
	}
	if d := crdProp(t, root, "spec.deep"); crdJSON(t, d.Default) != "{}" || crdJSON(t, crdProp(t, root, "spec.deep.inner").Default) != "{}" {
		t.Errorf("deep: %+v", d)
	}
	if m := crdProp(t, root, "spec.maybe"); !m.Nullable || m.Type != "string" || m.Enum != nil || len(m.XValidations) != 1 {
		// A nullable enum would reject null: it is a CEL rule instead (see
		// crdConstraints.finish).
		t.Errorf("maybe: %+v", m)
	}
	// int & >5 | 0: the union is not a range; no bounds but a CEL rule.
	if e := crdProp(t, root, "spec.either"); e.Minimum != nil || crdJSON(t, e.Default) != "0" || len(e.XValidations) != 1 {
		t.Errorf("either: %+v", e)
	}
	if n := crdProp(t, root, "spec.nodes[]"); !reflect.DeepEqual(n.Required, []string{"name"}) {
		t.Errorf("nodes: %+v", n)
	}
	if s := crdProp(t, root, "spec.sel"); s.MaxProperties == nil || *s.MaxProperties != 3 || s.AdditionalProperties == nil {
		t.Errorf("sel: %+v", s)
	}
	if q := crdProp(t, root, "spec.quoted-name"); q.Type != "string" {
		t.Errorf("quoted-name: %+v", q)
	}
	if l := crdProp(t, root, "spec.lots"); crdJSON(t, l.Default) != "[1,2]" || l.Items.Schema.Type != "integer" {
		t.Errorf("lots: %+v", l)
	}
	if n := crdProp(t, root, "spec.num"); n.Type != "number" || crdJSON(t, n.Default) != "1.5" {
		t.Errorf("num: %+v", n)
	}
	if h := crdProp(t, root, "spec.huge"); *h.Minimum != 0 || *h.Maximum != 2147483647 {
		t.Errorf("huge: %+v", h)
	}
	if s := crdProp(t, root, "spec.since"); s.Type != "string" || s.Format != "date-time" {
		t.Errorf("since: %+v", s)
	}
	if st := crdProp(t, root, "status"); st.XPreserveUnknownFields == nil || st.Properties != nil {
		t.Errorf("status: %+v", st)
	}
	crdStructural(t, crd)

	validator, _, err := apiservervalidation.NewSchemaValidator(crdInternal(t, crd))
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []map[string]any{
		{"maybe": nil}, {"maybe": "a"}, {"since": "2026-01-02T03:04:05Z"}, {"either": int64(0)}, {"either": int64(7)}, {"lots": []any{}},
	} {
		if errs := apiservervalidation.ValidateCustomResource(nil, map[string]any{"spec": spec}, validator); len(errs) > 0 {
			t.Errorf("spec %v rejected: %v", spec, errs.ToAggregate())
		}
	}
	for _, spec := range []map[string]any{
		{"level": "warn"}, {"since": "yesterday"}, {"mode": "other"}, {"replicas": int64(11)}, {"sel": map[string]any{"a": "", "b": "", "c": "", "d": ""}},
	} {
		if errs := apiservervalidation.ValidateCustomResource(nil, map[string]any{"spec": spec}, validator); len(errs) == 0 {
			t.Errorf("spec %v accepted", spec)
		}
	}
	cr := func(spec map[string]any) map[string]any {
		return map[string]any{"apiVersion": "example.com/v1", "kind": "Thing", "metadata": map[string]any{"name": "t"}, "spec": spec}
	}
	for _, spec := range []map[string]any{{"maybe": nil}, {"maybe": "b"}, {"either": int64(0)}, {"either": int64(6)}} {
		if got := celCheck(t, crd, cr(spec), nil); got != "" {
			t.Errorf("spec %v refused by its rules: %s", spec, got)
		}
	}
	for want, spec := range map[string]map[string]any{
		`spec.maybe: invalid value (does not satisfy "a" | "b")`:     {"maybe": "c"},
		"spec.either: invalid value (does not satisfy int & >5 | 0)": {"either": int64(3)},
	} {
		if got := celCheck(t, crd, cr(spec), nil); !strings.Contains(got, want) {
			t.Errorf("spec %v: got %q, want %q", spec, got, want)
		}
	}
}

func TestCRDErrorPath(t *testing.T) {
	e := field.Invalid(field.NewPath("spec", "versions").Index(0).Child("schema", "openAPIV3Schema", "properties[spec]", "properties[ports]", "items", "properties[name]", "default"), "x", "bad")
	if got, want := crdErrorString(e), `field spec.ports[].name.default: Invalid value: "x": bad`; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestCRDErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"struct disjunction", `{x: {a: int} | {b: string}}`, []string{"kind Thing", "spec.x", "disjunction of structs"}},
		{"fixed list", `{x: [int, string]}`, []string{"spec.x", "fixed-length list"}},
		{"regexp keys", `{x: [=~"^a"]: int}`, []string{"spec.x", "pattern constraint"}},
		{"fields and map", `{x: {a: int, [string]: int}}`, []string{"spec.x", "both fields and [string]: T"}},
		{"mixed kinds", `{x?: string | bool}`, []string{"spec.x", "cannot be expressed"}},
		{"bytes", `{x: bytes}`, []string{"spec.x", "bytes"}},
		{"spec not a struct", `string`, []string{"kind Thing", "#Spec must be a struct"}},
		{"recursive", `{x?: #Node}
#Node: {children?: [...#Node]}`, []string{"spec.x.children[]", "recursive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := crdKindFromCUE(t, "#Spec: "+tc.spec+"\n#Status: {}\n")
			_, err := Generate(k)
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestCRDValidated shows that what the generator lets through is still
// checked by the API server's CRD validation.
func TestCRDValidated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*render.Kind)
		want   []string
	}{
		{"printer column type", func(k *render.Kind) {
			k.PrinterColumns = []render.PrinterColumn{{Name: "X", Type: "bogus", JSONPath: ".spec.x"}}
		},
			[]string{"kind Thing", "additionalPrinterColumns[0].type", "bogus"}},
		{"plural", func(k *render.Kind) { k.Plural = "Things" }, []string{"kind Thing", "plural"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := crdKindFromCUE(t, "#Spec: {x: string}\n#Status: {}\n")
			tc.mutate(k)
			_, err := Generate(k)
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// kubectl explain shows descriptions as they are: they must read as prose,
// not name CUE definitions.
func TestCRDDescriptionsReadAsProse(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cueName := regexp.MustCompile(`(^|[\s(])#[A-Za-z]`)
	var walk func(kind, path string, s apiextensionsv1.JSONSchemaProps)
	walk = func(kind, path string, s apiextensionsv1.JSONSchemaProps) {
		if cueName.MatchString(s.Description) {
			t.Errorf("%s %s: description names a CUE definition: %q", kind, path, s.Description)
		}
		for name, p := range s.Properties {
			walk(kind, path+"."+name, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(kind, path+"[]", *s.Items.Schema)
		}
	}
	for _, k := range lib.Kinds() {
		crd, err := Generate(k)
		if err != nil {
			t.Fatal(err)
		}
		root := crdRoot(t, crd)
		if root.Description == "" {
			t.Errorf("%s: the kind has no description", k.GVK.Kind)
		}
		walk(k.GVK.Kind, "", *root)
	}

	root := crdRoot(t, crdMemcached(t))
	for path, want := range map[string]string{
		"":       "A Memcached cluster: a Deployment of memcached pods, whose names the status lists.",
		"spec":   "The desired state of a Memcached cluster.",
		"status": "The observed state of a Memcached cluster.",
	} {
		got := root.Description
		if path != "" {
			got = crdProp(t, root, path).Description
		}
		if got != want {
			t.Errorf("%q description: %q, want %q", path, got, want)
		}
	}
}

func TestProseDoc(t *testing.T) {
	for doc, want := range map[string]string{
		"#Spec is the desired state of a database.":         "The desired state of a database.",
		"#Labels are the recommended labels.":               "The recommended labels.",
		"#InventoryEntry names one applied child.":          "Names one applied child.",
		"common.#Status is what cuerator writes.":           "What cuerator writes.",
		"size is the number of memcached pods.":             "size is the number of memcached pods.",
		"It says #Spec in the middle, which is left as is.": "It says #Spec in the middle, which is left as is.",
	} {
		if got := proseDoc(doc); got != want {
			t.Errorf("proseDoc(%q) = %q, want %q", doc, got, want)
		}
	}
}

func TestUnwrapDoc(t *testing.T) {
	for doc, want := range map[string]string{
		"size is the volume's\ncapacity.": "size is the volume's capacity.",
		"one\nparagraph\n\nand another":   "one paragraph\n\nand another",
		"a list:\n- first\n- second":      "a list:\n- first\n- second",
		"code:\n\tkept as\n\tit is":       "code:\n\tkept as\n\tit is",
	} {
		if got := unwrapDoc(doc); got != want {
			t.Errorf("unwrapDoc(%q) = %q, want %q", doc, got, want)
		}
	}
}
