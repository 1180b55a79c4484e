package compat

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/versions"
)

// library builds a template module with one kind, Thing, whose api
// package has the given #Spec (and more, after it).
func library(t *testing.T, version, api string) *render.Library {
	t.Helper()
	lib, err := render.Load(fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"example.com/m@v0\"\nlanguage: version: \"v0.17.0\"\n")},
		"thing/api/api.cue": {Data: []byte(`package api

import (
	"net"
	"strings"
)

_net:     net.IPv4
_strings: strings.MinRunes

#CRD: {group: "example.com", version: "` + version + `", kind: "Thing", plural: "things", scope: "Namespaced"}
#Status: {...}
#Spec: ` + api + "\n")},
		"thing/thing.cue": {Data: []byte(`package thing

import "example.com/m/thing/api"

childKinds: []
cr: {metadata: {...}, spec: api.#Spec}
objects: {}
`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func TestBreaking(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		// want are the changes, each by a part of its text; none for a
		// change that breaks nothing.
		want []string
	}{
		{"nothing changes", `{a: int}`, `{a: int}`, nil},
		{"a field removed", `{a: int, b?: string}`, `{a: int}`, []string{"spec.b: the field is removed"}},
		{"a new optional field", `{a: int}`, `{a: int, b?: string}`, nil},
		{"a new defaulted field", `{a: int}`, `{a: int, b: string | *"x"}`, nil},
		{"a new required field", `{a: int}`, `{a: int, b!: string}`, []string{"spec.b: a new required field without a default"}},
		{"optional made required", `{a?: int}`, `{a!: int}`, []string{"spec.a: the field is now required"}},
		{"the maximum lowered", `{a: int & <=10}`, `{a: int & <=5}`, []string{"spec.a: the maximum is lowered from <=10 to <=5"}},
		{"the maximum raised", `{a: int & <=5}`, `{a: int & <=10}`, nil},
		{"a minimum added", `{a: int}`, `{a: int & >0}`, []string{"spec.a: the minimum is raised from none to >0"}},
		{"maxLength tightened", `{a: strings.MaxRunes(10)}`, `{a: strings.MaxRunes(5)}`, []string{"spec.a: maxLength tightens from 10 to 5"}},
		{"an enum value removed", `{a?: "x" | "y"}`, `{a?: "x"}`, []string{`spec.a: the enum no longer admits "y"`}},
		{"an enum value added", `{a?: "x"}`, `{a?: "x" | "y"}`, nil},
		// a: "x" is a constant, completed by CUE: a CR may leave it out.
		{"a constant made a choice", `{a: "x"}`, `{a: "x" | "y"}`, []string{"spec.a: the field is now required"}},
		{"an enum instead of any string", `{a?: string}`, `{a?: "x" | "y"}`, []string{`spec.a: the value is now limited to "x", "y"`}},
		{"the type changes", `{a: int}`, `{a: string}`, []string{"spec.a: the type changes from integer to string"}},
		{"int or string", `{a: int}`, `{a: int | string}`, nil},
		{"the pattern changes", `{a: =~"^a"}`, `{a: =~"^ab"}`, []string{`spec.a: the pattern changes to "^ab"`}},
		{"in a list", `{ports: [...{port: int & <=65535}]}`, `{ports: [...{port: int & <=1024}]}`, []string{"spec.ports[].port: the maximum is lowered"}},
		{"in a map", `{m: [string]: int}`, `{m: [string]: int & >=0}`, []string{"spec.m[*]: the minimum is raised"}},
		{"made immutable", `{a: string}`, `{a: string @immutable()}`, []string{"spec.a: a new rule on updates: spec.a: is immutable"}},
		{"a rule between fields", `{lo: int, hi: int}`, `{lo: int, hi: int & >=lo}`, []string{"spec: a new rule: spec.hi: invalid value (out of bound >=spec.lo)"}},
		{"a constraint without CEL form", `{a?: string}`, `{a?: string & net.IPv4}`, []string{"spec.a: net.IPv4() is not checked at admission (it has no CEL form), and may refuse CRs the old templates accept: run the preflight"}},
		{"a rule on names", `{}`, `{}
#Name: =~"^[a-z]+$"`, []string{`metadata.name: a new rule: metadata.name: invalid value (out of bound =~"^[a-z]+$")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes, err := Breaking(library(t, "v1", tc.old), library(t, "v1", tc.new))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, c.String())
			}
			if len(changes) != len(tc.want) {
				t.Fatalf("changes:\n  %s\nwant %d: %q", strings.Join(got, "\n  "), len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], "Thing "+w) {
					t.Errorf("change %q, want %q", got[i], "Thing "+w)
				}
			}
		})
	}
}

func TestBreakingKinds(t *testing.T) {
	old := library(t, "v1", `{a: int}`)
	changes, err := Breaking(old, library(t, "v2", `{a: int}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.HasPrefix(changes[0].String(), "Thing: version v1 is removed, and the CRs are stored in it: the API server refuses the CRD while status.storedVersions lists v1") {
		t.Errorf("a new version: %v", changes)
	}
	shipped, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	changes, err = Breaking(old, shipped)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0].String(), "Thing: the kind (Thing.example.com) is removed") {
		t.Errorf("a removed kind: %v", changes)
	}
	// The shipped module against itself, and new kinds: nothing breaks.
	if changes, err := Breaking(shipped, shipped); err != nil || len(changes) != 0 {
		t.Errorf("the shipped templates against themselves: %v, %v", changes, err)
	}
	if changes, err := Breaking(shipped, old); err != nil || len(changes) != len(shipped.Kinds()) {
		t.Errorf("every shipped kind removed: %v, %v", changes, err)
	}
}

// v2 with v1 still served, both ways converted, and the storage version.
func twoVersions(t *testing.T, storage, v1 string) *render.Library {
	t.Helper()
	return library(t, "v2", `{a: int}
#CRD: storageVersion: "`+storage+`"
#Versions: v1: #Spec: `+v1+`
#Convert: v1: v2: {in: {...}, out: spec: a: in.spec.a}
#Convert: v2: v1: {in: {...}, out: spec: a: in.spec.a}`)
}

func TestBreakingVersions(t *testing.T) {
	one := library(t, "v1", `{a: int}`)
	for _, tc := range []struct {
		name     string
		old, new *render.Library
		want     []string
	}{
		{"a version added, with conversions", one, twoVersions(t, "v2", `{a: int}`), nil},
		{"the storage version changed", twoVersions(t, "v1", `{a: int}`), twoVersions(t, "v2", `{a: int}`), nil},
		{"an old version's schema tightened", twoVersions(t, "v2", `{a: int}`), twoVersions(t, "v2", `{a: int & <=3}`),
			[]string{"Thing v1 spec.a: the maximum is lowered from none to <=3"}},
		{"an old version removed", twoVersions(t, "v2", `{a: int}`), library(t, "v2", `{a: int}`),
			[]string{"Thing: version v1 is removed (the new one is v2)"}},
		{"the stored version removed", twoVersions(t, "v1", `{a: int}`), library(t, "v2", `{a: int}`),
			[]string{"Thing: version v1 is removed, and the CRs are stored in it", "migrate the storage (cuerator migrate)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes, err := Breaking(tc.old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 {
				if len(changes) > 0 {
					t.Errorf("breaking: %v", changes)
				}
				return
			}
			if len(changes) != 1 {
				t.Fatalf("changes %v, want one", changes)
			}
			for _, w := range tc.want {
				if !strings.Contains(changes[0].String(), w) {
					t.Errorf("change %q does not say %q", changes[0], w)
				}
			}
		})
	}
	// The shipped Memcached evolved to v1beta1 (test/versions) breaks nothing.
	fsys, err := versions.Module()
	if err != nil {
		t.Fatal(err)
	}
	evolved, err := render.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if changes, err := Breaking(shipped, evolved); err != nil || len(changes) != 0 {
		t.Errorf("Memcached v1alpha1 to v1beta1: %v, %v", changes, err)
	}
}
