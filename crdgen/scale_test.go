package crdgen

import (
	"strings"
	"testing"
)

// #CRD.scale becomes the scale subresource of every version; a path that
// names no field of the right type is refused, naming it, rather than
// giving autoscalers 0 replicas to act on.
func TestCRDScaleSubresource(t *testing.T) {
	const schema = `
#Spec: {replicas: int | *1, name?: string}
#Status: {replicas?: int, selector?: string, phase?: string}
`
	k := crdKindFromCUE(t, schema+`#CRD: scale: {specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas", labelSelectorPath: ".status.selector"}`)
	crd, err := Generate(k)
	if err != nil {
		t.Fatal(err)
	}
	sc := crd.Spec.Versions[0].Subresources.Scale
	if sc == nil || sc.SpecReplicasPath != ".spec.replicas" || sc.StatusReplicasPath != ".status.replicas" || sc.LabelSelectorPath == nil || *sc.LabelSelectorPath != ".status.selector" {
		t.Fatalf("scale subresource: %+v", sc)
	}
	if crd.Spec.Versions[0].Subresources.Status == nil {
		t.Error("the status subresource is gone")
	}

	// Without a selector path: kubectl scale works, an HPA has no pods to
	// read metrics from.
	k = crdKindFromCUE(t, schema+`#CRD: scale: {specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas"}`)
	if crd, err = Generate(k); err != nil {
		t.Fatal(err)
	}
	if sc := crd.Spec.Versions[0].Subresources.Scale; sc == nil || sc.LabelSelectorPath != nil {
		t.Errorf("scale subresource without a selector: %+v", sc)
	}

	for name, tc := range map[string]struct{ scale, want string }{
		"no such spec field":      {`{specReplicasPath: ".spec.size", statusReplicasPath: ".status.replicas"}`, `#CRD.scale.specReplicasPath: ".spec.size": no field size in the schema`},
		"status path in spec":     {`{specReplicasPath: ".status.replicas", statusReplicasPath: ".status.replicas"}`, `#CRD.scale.specReplicasPath: ".status.replicas" must be a path under .spec`},
		"a string of replicas":    {`{specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.phase"}`, `#CRD.scale.statusReplicasPath: ".status.phase" is of type string, want integer`},
		"a selector not a string": {`{specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas", labelSelectorPath: ".status.replicas"}`, `#CRD.scale.labelSelectorPath: ".status.replicas" is of type integer, want string`},
		"no status path":          {`{specReplicasPath: ".spec.replicas"}`, `#CRD.scale.statusReplicasPath: must be set`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Generate(crdKindFromCUE(t, schema+"#CRD: scale: "+tc.scale))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error saying %q, got %v", tc.want, err)
			}
		})
	}
}
