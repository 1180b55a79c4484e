package engine

import (
	_ "embed"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// ArgoCDHealthLua is the Argo CD health check of every cuerator kind: the
// status contract (observedGeneration, Ready, Reconciling, Stalled) is the
// same for all of them, so one script serves all.
//
//go:embed argocd_health.lua
var ArgoCDHealthLua string

// ArgoCDHealthKey is the argocd-cm key that holds the health check of gvk.
func ArgoCDHealthKey(gvk schema.GroupVersionKind) string {
	return fmt.Sprintf("resource.customizations.health.%s_%s", gvk.Group, gvk.Kind)
}

// argoCDPatchHeader says where the patch comes from and how to use it.
const argoCDPatchHeader = `# Generated from the templates by ` + "`cuerator argocd-health`" + ` (make argocd-health): do not edit.
# Argo CD health checks for cuerator's kinds. Merge into argocd-cm with
#   kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm-patch.yaml
# or list it under patches: in the kustomization that installs Argo CD.
`

// ArgoCDHealthPatch is a patch of Argo CD's argocd-cm ConfigMap that gives
// each kind of the library the health check ArgoCDHealthLua.
func (l *Library) ArgoCDHealthPatch() ([]byte, error) {
	data := map[string]any{}
	for _, k := range l.Kinds() {
		data[ArgoCDHealthKey(k.GVK)] = ArgoCDHealthLua
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
