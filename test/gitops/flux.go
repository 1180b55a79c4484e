package gitops

import (
	"context"
	"fmt"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// FluxKustomization is the part of a Flux Kustomization the tests read.
type FluxKustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Wait             bool                          `json:"wait"`
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

// HealthCheckGVK is the kind a healthCheckExprs entry applies to.
func HealthCheckGVK(e kustomize.CustomHealthCheck) schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(e.APIVersion, e.Kind)
}

// ReadFluxKustomization reads a file holding one Flux Kustomization.
func ReadFluxKustomization(path string) (*FluxKustomization, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var k FluxKustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if k.APIVersion != "kustomize.toolkit.fluxcd.io/v1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: %s %s is not a kustomize.toolkit.fluxcd.io/v1 Kustomization", path, k.APIVersion, k.Kind)
	}
	return &k, nil
}

// FluxStatus is the status Flux's own CEL evaluator (fluxcd/pkg/runtime,
// what kustomize-controller runs for healthCheckExprs) gives obj. An
// expression that cannot be evaluated (a field the object lacks) is an
// error, which Flux reports as Unknown and keeps waiting.
func FluxStatus(ctx context.Context, e kustomize.CustomHealthCheck, obj *unstructured.Unstructured) (status.Status, error) {
	evaluator, err := fluxcel.NewStatusEvaluator(&e.HealthCheckExpressions)
	if err != nil {
		return status.UnknownStatus, fmt.Errorf("healthCheckExprs of %s: %w", HealthCheckGVK(e), err)
	}
	res, err := evaluator.Evaluate(ctx, obj)
	if err != nil {
		return status.UnknownStatus, err
	}
	// Flux's kstatus is a fork of cli-utils' with the same status names.
	return status.Status(res.Status), nil
}
