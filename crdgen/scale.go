package crdgen

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/cuerator/cuerator/render"
)

// The scale subresource lets `kubectl scale`, a HorizontalPodAutoscaler and
// KEDA change a CR's replicas as they change a Deployment's. A kind asks for
// it in #CRD:
//
//	scale: {
//		specReplicasPath:   ".spec.replicas"   // an integer of #Spec
//		statusReplicasPath: ".status.replicas" // an integer of #Status
//		labelSelectorPath:  ".status.selector" // optional: a string, the pods' selector
//	}
//
// The API server checks only that each path is under .spec or .status; the
// generator also checks that it names a field of the schema of the right
// type, since a path to nothing makes the scale subresource read 0 replicas
// and an autoscaler act on that.

// scaleInfo is the shape of #CRD.scale.
type scaleInfo struct {
	SpecReplicasPath   string `json:"specReplicasPath"`
	StatusReplicasPath string `json:"statusReplicasPath"`
	LabelSelectorPath  string `json:"labelSelectorPath"`
}

// addScale gives every version of crd the scale subresource that k's #CRD
// declares, if any.
func addScale(k *render.Kind, crd *apiextensionsv1.CustomResourceDefinition) error {
	v := k.API.LookupPath(cue.ParsePath("#CRD.scale"))
	if !v.Exists() {
		return nil
	}
	var info scaleInfo
	if err := v.Decode(&info); err != nil {
		return crdFieldError(v, "#CRD.scale", "%v", render.Diagnose(err))
	}
	for i := range crd.Spec.Versions {
		ver := &crd.Spec.Versions[i]
		root := ver.Schema.OpenAPIV3Schema
		checks := []struct {
			name, path, typ, under string
		}{
			{"specReplicasPath", info.SpecReplicasPath, "integer", ".spec."},
			{"statusReplicasPath", info.StatusReplicasPath, "integer", ".status."},
			{"labelSelectorPath", info.LabelSelectorPath, "string", ""},
		}
		for _, c := range checks {
			if c.path == "" {
				if c.name == "labelSelectorPath" {
					continue
				}
				return crdFieldError(v, "#CRD.scale."+c.name, "must be set")
			}
			if c.under != "" && !strings.HasPrefix(c.path, c.under) {
				return crdFieldError(v, "#CRD.scale."+c.name, "%q must be a path under %s", c.path, strings.TrimSuffix(c.under, "."))
			}
			if c.under == "" && !strings.HasPrefix(c.path, ".spec.") && !strings.HasPrefix(c.path, ".status.") {
				return crdFieldError(v, "#CRD.scale."+c.name, "%q must be a path under .spec or .status", c.path)
			}
			got, err := schemaAt(root, c.path)
			if err != nil {
				return crdFieldError(v, "#CRD.scale."+c.name, "%q: %v", c.path, err)
			}
			if got.Type != c.typ {
				return crdFieldError(v, "#CRD.scale."+c.name, "%q is of type %s, want %s", c.path, typeName(got), c.typ)
			}
		}
		if ver.Subresources == nil {
			ver.Subresources = &apiextensionsv1.CustomResourceSubresources{}
		}
		ver.Subresources.Scale = &apiextensionsv1.CustomResourceSubresourceScale{
			SpecReplicasPath:   info.SpecReplicasPath,
			StatusReplicasPath: info.StatusReplicasPath,
		}
		if info.LabelSelectorPath != "" {
			sel := info.LabelSelectorPath
			ver.Subresources.Scale.LabelSelectorPath = &sel
		}
	}
	return nil
}

// schemaAt returns the schema of the field at a simple JSON path
// (".spec.replicas").
func schemaAt(root *apiextensionsv1.JSONSchemaProps, path string) (*apiextensionsv1.JSONSchemaProps, error) {
	cur := root
	for _, name := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		next, ok := cur.Properties[name]
		if !ok {
			return nil, fmt.Errorf("no field %s in the schema", name)
		}
		cur = &next
	}
	return cur, nil
}

func typeName(s *apiextensionsv1.JSONSchemaProps) string {
	switch {
	case s.XIntOrString:
		return "int-or-string"
	case s.Type == "":
		return "any"
	}
	return s.Type
}
