package render_test

import (
	"strings"
	"testing"

	"github.com/cuerator/cuerator/render"
)

const inputsTemplate = `package x

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
inputKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
observed: inputs: [string]: _
cr: {metadata: {name: string, namespace: string, ...}, spec: {}}
inputs: settings: {apiVersion: "v1", kind: "ConfigMap", name: cr.metadata.name + "-settings"}
objects: copy: {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: cr.metadata.name
	data: greeting: observed.inputs.settings.data.greeting
}
`

// A template that reads an input renders nothing until it is given: then
// its children read it.
func TestInputsAreReadBeforeTheRender(t *testing.T) {
	out, err := graphModule(t, inputsTemplate).Render(graphCR())
	if err != nil {
		t.Fatal(err)
	}
	if !out.PendingInputs || len(out.Objects) != 0 || len(out.Inputs) != 1 {
		t.Fatalf("pending %v, objects %v, inputs %+v", out.PendingInputs, out.Keys, out.Inputs)
	}
	in := out.Inputs[0]
	if in.Key != "settings" || in.Name != "x-settings" || in.Namespace != "ns" || in.GVK.Kind != "ConfigMap" {
		t.Errorf("input %+v", in)
	}
	if err := out.InputsNeeded(); err == nil || !strings.Contains(err.Error(), "inputs.settings (ConfigMap/ns/x-settings)") {
		t.Errorf("InputsNeeded: %v", err)
	}

	err = out.Observe(render.Observed{Inputs: map[string]any{"settings": map[string]any{"data": map[string]any{"greeting": "hi"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Object("copy")
	if out.PendingInputs || c == nil || c.Object["data"].(map[string]any)["greeting"] != "hi" {
		t.Fatalf("after Observe: pending %v, copy %v", out.PendingInputs, c)
	}
	// The inputs stay with the render: a later Observe (the live children)
	// need not give them again.
	if err := out.Observe(render.Observed{}); err != nil || out.Object("copy") == nil {
		t.Errorf("a second Observe without inputs: %v", err)
	}
}

func TestInputMistakesRefused(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"a kind not in inputKinds", `inputs: settings: {apiVersion: "v1", kind: "ConfigMap"`, `inputs: settings: {apiVersion: "v1", kind: "Secret"`, "not among the template's inputKinds"},
		{"both name and labels", `name: cr.metadata.name + "-settings"}`, `name: "a", matchLabels: {a: "b"}}`, "either name or matchLabels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := graphModule(t, strings.Replace(inputsTemplate, tc.from, tc.to, 1)).Render(graphCR())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
