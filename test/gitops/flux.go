package gitops

import (
	"context"
	"fmt"
	"os"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
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
		Wait             bool                   `json:"wait"`
		HealthCheckExprs []FluxHealthCheckExprs `json:"healthCheckExprs"`
	} `json:"spec"`
}

// FluxHealthCheckExprs is one entry of spec.healthCheckExprs.
type FluxHealthCheckExprs struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

// GVK is the kind the expressions apply to.
func (e FluxHealthCheckExprs) GVK() schema.GroupVersionKind {
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

// FluxStatus computes the status Flux's CEL status reader gives obj (RFC
// 0009, fluxcd/pkg/runtime/cel): an observedGeneration that differs from
// metadata.generation is InProgress; then the first of inProgress, failed
// and current that is true decides; if none is, InProgress. An expression
// that cannot be evaluated (a field the object lacks) is an error, which
// Flux reports as Unknown and keeps waiting.
func FluxStatus(ctx context.Context, e FluxHealthCheckExprs, obj *unstructured.Unstructured) (status.Status, error) {
	observed, hasObserved, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	generation, hasGeneration, _ := unstructured.NestedInt64(obj.Object, "metadata", "generation")
	if hasObserved && hasGeneration && observed != generation {
		return status.InProgressStatus, nil
	}
	for _, check := range []struct {
		expr   string
		status status.Status
	}{
		{e.InProgress, status.InProgressStatus},
		{e.Failed, status.FailedStatus},
		{e.Current, status.CurrentStatus},
	} {
		if check.expr == "" {
			continue
		}
		ok, err := evalFluxCEL(ctx, check.expr, obj.Object)
		if err != nil {
			return status.UnknownStatus, err
		}
		if ok {
			return check.status, nil
		}
	}
	return status.InProgressStatus, nil
}

// evalFluxCEL evaluates a boolean expression in the environment Flux builds
// for health checks: parsed, not type-checked, the object's top-level
// fields as variables.
func evalFluxCEL(ctx context.Context, expr string, obj map[string]any) (bool, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return false, err
	}
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return false, fmt.Errorf("parse %q: %w", expr, issues.Err())
	}
	prog, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		return false, fmt.Errorf("program %q: %w", expr, err)
	}
	val, _, err := prog.ContextEval(ctx, obj)
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", expr, err)
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%q is not a boolean", expr)
	}
	return bool(b), nil
}
