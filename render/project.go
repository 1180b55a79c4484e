package render

import (
	"encoding/json"
	"errors"
	"fmt"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// Observed is what the controller saw in the cluster, for the template's
// children that read others, its readiness and its status projection.
type Observed struct {
	// Pods are the pods that observe.pods.matchLabels selects.
	Pods []ObservedPod `json:"pods"`
	// Children holds each live child (metadata, spec, status) by its
	// template key.
	Children map[string]any `json:"children"`
	// Inputs holds the template's inputs by key: an object, or a list of
	// them for an input by labels.
	Inputs map[string]any `json:"inputs"`
}

// normalized is obs with empty lists and maps where it has none: the
// template's observed is never incomplete for want of them.
func (obs Observed) normalized() Observed {
	if obs.Pods == nil {
		obs.Pods = []ObservedPod{}
	}
	if obs.Children == nil {
		obs.Children = map[string]any{}
	}
	if obs.Inputs == nil {
		obs.Inputs = map[string]any{}
	}
	return obs
}

// ObservedPod is the part of a pod a status projection may use.
type ObservedPod struct {
	Name  string `json:"name"`
	Phase string `json:"phase,omitempty"`
}

// Status evaluates the template's `status` with what was observed, under
// the render's time budget. It returns nil when the template projects no
// status.
func (r *Rendered) Status(obs Observed) (map[string]any, error) {
	if r.kind == nil {
		return nil, fmt.Errorf("status projection: not a render's outcome")
	}
	obs = r.kind.observed.trim(r.withInputs(obs).normalized())
	env := r.kind.environment()
	key, memo := keyOf(r.kind.Dir, "status", r.input, obs)
	if memo {
		if err := env.overBudget.get(key); err != nil {
			return nil, fmt.Errorf("status projection: %w", err)
		}
	}
	status, err := env.eval.status(r, obs)
	if berr := (*BudgetError)(nil); memo && errors.As(err, &berr) {
		env.overBudget.put(key, berr)
	}
	return status, err
}

// StatusAsRendered is the template's status as the render itself
// evaluated it, from what the render observed: nothing, for a CR whose
// children do not exist yet. It costs no evaluation. ok is false when that
// status is not concrete (it needs what is observed): Status projects it.
func (r *Rendered) StatusAsRendered() (status map[string]any, ok bool) {
	return r.status, r.statusKnown
}

// concreteStatus is the status of an evaluated template, when it is
// concrete; a template without one has the nil status.
func concreteStatus(filled cue.Value) (map[string]any, bool) {
	v := filled.LookupPath(pathStatus)
	if !v.Exists() {
		return nil, true
	}
	if v.Validate(cue.Concrete(true)) != nil {
		return nil, false
	}
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, false
	}
	var status map[string]any
	if json.Unmarshal(raw, &status) != nil {
		return nil, false
	}
	return status, true
}

// projection evaluates a template's status alone. Filling the template
// (FillPath) finalizes all of it, every child included; selecting status
// from the template unified with the CR and what was observed, as an
// expression, evaluates what the status reads and no more: a WebApp's
// projection in a third of the time.
type projection struct {
	// scope holds the template (T) beside the CR, random text and what was
	// observed (CR, RANDOM, OBS), which each projection fills.
	scope cue.Value
	// expr is (T & {cr: CR, observed: OBS[, random: RANDOM]}).status.
	expr ast.Expr
}

func newProjection(tmpl cue.Value, usesRandom bool) *projection {
	fields := []any{
		&ast.Field{Label: ast.NewIdent("cr"), Value: ast.NewIdent("CR")},
		&ast.Field{Label: ast.NewIdent("observed"), Value: ast.NewIdent("OBS")},
	}
	if usesRandom {
		fields = append(fields, &ast.Field{Label: ast.NewIdent("random"), Value: ast.NewIdent("RANDOM")})
	}
	return &projection{
		scope: tmpl.Context().CompileString("T: _, CR: _, OBS: _, RANDOM: _").FillPath(cue.ParsePath("T"), tmpl),
		expr: ast.NewSel(&ast.ParenExpr{X: ast.NewBinExpr(token.AND, ast.NewIdent("T"), ast.NewStruct(fields...))},
			pathStatus.String()),
	}
}

// projectStatus evaluates the kind's status from the CR's input, random
// text and what was observed (an Observed, or the same as a map). They are
// filled into the scope as Go values, as a render fills them, and the
// expression was compiled once: nothing of a CR is compiled as source.
func (k *Kind) projectStatus(input map[string]any, random string, observed any) (map[string]any, error) {
	if k.projection == nil {
		return statusOf(k.fillWith(input, random, observed))
	}
	fields := map[string]any{"CR": input, "OBS": observed}
	if k.usesRandom {
		fields["RANDOM"] = random
	}
	scope := k.projection.scope.FillPath(cue.MakePath(), fields)
	return decodeStatus(k.template.Context().BuildExpr(k.projection.expr, cue.Scope(scope)))
}

// statusOf evaluates the status of a template filled with the CR and what
// was observed.
func statusOf(withObserved cue.Value) (map[string]any, error) {
	v := withObserved.LookupPath(pathStatus)
	if !v.Exists() {
		return nil, nil
	}
	return decodeStatus(v)
}

// decodeStatus is a status value as JSON would have it, once it is
// concrete.
func decodeStatus(v cue.Value) (map[string]any, error) {
	if err := v.Validate(cue.Concrete(true)); err != nil {
		return nil, fmt.Errorf("status projection: %w", Diagnose(err))
	}
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("status projection: %w", Diagnose(err))
	}
	var status map[string]any
	if err := json.Unmarshal(raw, &status); err != nil {
		return nil, fmt.Errorf("status projection: %w", err)
	}
	return status, nil
}
