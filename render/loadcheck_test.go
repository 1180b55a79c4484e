package render_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
)

// moduleOf writes a template module of one kind x from its api package and
// its template, and loads it.
func moduleOf(t *testing.T, api, template string) (*render.Library, error) {
	t.Helper()
	dir := moduleWith(t, plainModule, template)
	if api != "" {
		if err := os.WriteFile(filepath.Join(dir, "x", "api", "api.cue"), []byte(api), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return render.Load(os.DirFS(dir))
}

const xHeader = `package api
#CRD: {group: "sec.test", version: "v1", kind: "X", plural: "xs", singular: "x", scope: "Namespaced"}
#Spec: {backup: enabled: bool | *false}
`

// A #Status that refuses the fields cuerator writes into every status is
// refused when the module loads, naming the file and the field: the API
// server would drop the conditions and the inventory, and pruning would
// stop without a word.
func TestLoadRefusesAStatusWithoutCommonStatus(t *testing.T) {
	for name, tc := range map[string]struct{ status, field string }{
		"closed and empty":           {"#Status: {}\n", "status.observedGeneration"},
		"closed with fields":         {"#Status: {url?: string}\n", "status.observedGeneration"},
		"conditions of its own":      {"#Status: {\n\tobservedGeneration?: int\n\tconditions?: [...{type: string, ok: bool}]\n\t...\n}\n", "status.conditions"},
		"inventory of another shape": {"#Status: {\n\tinventory?: [...string]\n\t...\n}\n", "status.inventory"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := moduleOf(t, xHeader+tc.status, "package x\nchildKinds: []\ncr: _\nobjects: {}\n")
			if err == nil {
				t.Fatal("the module loaded")
			}
			// #Status is on line 4.
			for _, want := range []string{"kind x: x/api/api.cue:4: ", "refuses " + tc.field + ",", "embed common.#Status"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
		})
	}
	for name, status := range map[string]string{
		"open":                  "#Status: {...}\n",
		"the fields, spelt out": "#Status: {observedGeneration?: int, conditions?: [...], inventory?: [...], children?: [...], url?: string}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := moduleOf(t, xHeader+status, "package x\nchildKinds: []\ncr: _\nobjects: {}\n"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A child that reads random and is not create-only is refused when the
// module loads, naming the file and line of the field that reads it: it
// would be rewritten with new text on every reconcile.
func TestLoadRefusesRandomInAChildThatIsNotCreateOnly(t *testing.T) {
	const head = "package x\nchildKinds: [{apiVersion: \"v1\", kind: \"Secret\"}]\ncr: spec: backup: enabled: bool | *false\nrandom: string\n"
	for name, tc := range map[string]struct{ body, field string }{
		"directly": {`objects: s: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: "s"
	stringData: password: random
}
`, "x/x.cue:9: objects.s.stringData.password reads random, and objects.s is not create-only"},
		"through a hidden field and an interpolation": {`_token: "t-\(random)"
objects: s: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: "s"
	stringData: token: _token
}
`, "objects.s.stringData.token reads random"},
		"in a child a defaulted switch turns on": {`if cr.spec.backup.enabled {
	objects: backup: {
		apiVersion: "v1"
		kind:       "Secret"
		metadata: name: "backup"
		stringData: key: random
	}
}
objects: s: {apiVersion: "v1", kind: "Secret", metadata: name: "s"}
`, "objects.backup.stringData.key reads random"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := moduleOf(t, "", head+tc.body)
			if err == nil {
				t.Fatal("the module loaded")
			}
			if !strings.Contains(err.Error(), "kind x: x/x.cue:") || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "cuerator.dev/apply: create-only") {
				t.Errorf("error does not name the file, the field and the fix (want %q): %v", tc.field, err)
			}
		})
	}

	t.Run("create-only", func(t *testing.T) {
		_, err := moduleOf(t, "", head+`objects: s: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: {name: "s", annotations: "cuerator.dev/apply": "create-only"}
	stringData: password: random
}
objects: t: {apiVersion: "v1", kind: "Secret", metadata: name: "t"}
`)
		if err != nil {
			t.Fatal(err)
		}
	})
}

// A child that only some specs produce, under a condition Load cannot turn
// on, is refused when such a spec renders, as a template error naming it.
func TestRenderRefusesRandomInAChildThatIsNotCreateOnly(t *testing.T) {
	lib, err := moduleOf(t, `package api
#CRD: {group: "sec.test", version: "v1", kind: "X", plural: "xs", singular: "x", scope: "Namespaced"}
#Spec: {mode: "plain" | "token" | *"plain"}
#Status: {...}
`, `package x
childKinds: [{apiVersion: "v1", kind: "Secret"}]
cr: spec: mode: "plain" | "token" | *"plain"
random: string
objects: s: {apiVersion: "v1", kind: "Secret", metadata: name: "s"}
if cr.spec.mode == "token" {
	objects: s: stringData: token: random
}
`)
	if err != nil {
		t.Fatal(err)
	}
	cr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "sec.test/v1", "kind": "X", "metadata": map[string]any{"name": "a", "namespace": "ns"}, "spec": map[string]any{}}}
	if _, err := lib.RenderCR(cr); err != nil {
		t.Fatalf("mode plain: %v", err)
	}
	cr.Object["spec"] = map[string]any{"mode": "token"}
	_, err = lib.RenderCR(cr)
	var terr *render.TemplateError
	if !errors.As(err, &terr) || !strings.Contains(err.Error(), "objects.s reads random, and is not create-only") || !strings.Contains(err.Error(), "x/x.cue:") {
		t.Fatalf("mode token: want a template error naming objects.s and its file, got %v", err)
	}
}

// A kind whose #CRD asks for the scale subresource must project the status
// fields it reads, or kubectl scale and autoscalers would see nothing there.
func TestLoadRefusesAScaleTheStatusDoesNotProject(t *testing.T) {
	api := `package api
#CRD: {
	group: "sec.test", version: "v1", kind: "X", plural: "xs", singular: "x", scope: "Namespaced"
	scale: {specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas", labelSelectorPath: ".status.selector"}
}
#Spec: {replicas: int | *1}
#Status: {replicas?: int, selector?: string, ...}
`
	const head = "package x\nchildKinds: []\ncr: _\nobjects: {}\n"
	_, err := moduleOf(t, api, head+"status: replicas: 1\n")
	if err == nil || !strings.Contains(err.Error(), "x/api/api.cue:4: #CRD.scale.labelSelectorPath is \".status.selector\", and the template's status does not project status.selector") {
		t.Errorf("want a refusal naming the file and status.selector, got %v", err)
	}
	if _, err := moduleOf(t, api, head+"status: {replicas: 1, selector: \"a=b\"}\n"); err != nil {
		t.Error(err)
	}
}

// The rules of a template's Role are read when the module loads, for the
// operator's RBAC, which must hold them: rules that depend on the CR are
// refused, naming the field.
func TestRoleRulesAreReadWithoutACR(t *testing.T) {
	const head = "package x\nchildKinds: [{apiVersion: \"rbac.authorization.k8s.io/v1\", kind: \"Role\"}]\ncr: {metadata: name: string, spec: resource: string}\n"
	lib, err := moduleOf(t, xHeader+"#Status: {...}\n", head+`objects: role: {
	apiVersion: "rbac.authorization.k8s.io/v1"
	kind:       "Role"
	metadata: name: cr.metadata.name
	rules: [{apiGroups: [""], resources: ["services"], verbs: ["get", "list"]}]
}
`)
	if err != nil {
		t.Fatal(err)
	}
	rules := lib.Kinds()[0].RoleRules()
	if len(rules) != 1 || rules[0].Resources[0] != "services" || len(rules[0].Verbs) != 2 {
		t.Errorf("rules %+v", rules)
	}

	_, err = moduleOf(t, xHeader+"#Status: {...}\n", head+`objects: role: {
	apiVersion: "rbac.authorization.k8s.io/v1"
	kind:       "Role"
	metadata: name: cr.metadata.name
	rules: [{apiGroups: [""], resources: [cr.spec.resource], verbs: ["get"]}]
}
`)
	if err == nil {
		t.Fatal("a Role whose rules read the CR loaded")
	}
	for _, want := range []string{"x/x.cue:", "objects.role.rules: a Role's rules must not depend on the CR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
}
