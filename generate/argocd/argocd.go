// Package argocd generates Argo CD health checks for a template library's
// kinds: one Lua script reads the status contract all kinds share.
package argocd

import (
	_ "embed"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

// HealthLua is the Argo CD health check of every cuerator kind: the
// status contract (observedGeneration, Ready, Reconciling, Stalled) is the
// same for all of them, so one script serves all.
//
//go:embed argocd_health.lua
var HealthLua string

// HealthKey is the argocd-cm key that holds the health check of gvk.
func HealthKey(gvk schema.GroupVersionKind) string {
	return fmt.Sprintf("resource.customizations.health.%s_%s", gvk.Group, gvk.Kind)
}

// argoCDPatchHeader says where the patch comes from and how to use it.
const argoCDPatchHeader = `# Generated from the templates by ` + "`cuerator argocd-health`" + ` (make argocd-health): do not edit.
# Argo CD health checks for cuerator's kinds. Merge into argocd-cm with
#   kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm-patch.yaml
# or list it under patches: in the kustomization that installs Argo CD.
`

// HealthPatch is a patch of Argo CD's argocd-cm ConfigMap that gives
// each kind of the library the health check HealthLua.
func HealthPatch(lib *render.Library) ([]byte, error) {
	data := map[string]any{}
	for _, k := range lib.Kinds() {
		data[HealthKey(k.GVK)] = HealthLua
	}
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": "argocd-cm", "namespace": "argocd"},
		"data":       data,
	})
	if err != nil {
		return nil, fmt.Errorf("argocd-cm patch: %w", err)
	}
	return append([]byte(argoCDPatchHeader), b...), nil
}
