package render

import (
	"fmt"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/cuerator/cuerator/child"
)

// Mistakes of a template module that no CR can fix, and that would otherwise
// show only once the operator runs it, are refused when the module loads,
// naming the file:
//
//   - a #Status that refuses what cuerator writes into every status
//     (observedGeneration, conditions, inventory, children): the API server
//     prunes what the CRD's schema does not have, so the conditions and the
//     inventory vanish, and with the inventory pruning stops, silently;
//   - a child that reads `random` and is not create-only: each render draws
//     new random text, so every reconcile would rewrite that child;
//   - a scale subresource (#CRD.scale) whose status fields the template
//     does not project: an autoscaler would read 0 replicas, or no pods.

// statusProbe holds one of each field cuerator writes into a status, as it
// writes them (controllers/status.go and child.InventoryEntry).
var statusProbe = []struct {
	field string
	value any
}{
	{"observedGeneration", int64(2)},
	{"conditions", []any{map[string]any{
		"type": "Ready", "status": "False", "observedGeneration": int64(2),
		"lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "Progressing", "message": "Deployment/ns/n is InProgress",
	}}},
	{"inventory", []any{map[string]any{"id": "ns_n_apps_Deployment", "v": "v1"}}},
	{"children", []any{map[string]any{"object": "Deployment/ns/n", "status": "InProgress", "message": "1 of 3 replicas ready"}}},
}

// checkStatus refuses a #Status that does not accept every field cuerator
// writes: one that does not embed common.#Status (or leave itself open).
func checkStatus(api cue.Value) error {
	def := api.LookupPath(cue.ParsePath("#Status"))
	for _, p := range statusProbe {
		probe := api.Context().Encode(map[string]any{p.field: p.value})
		if err := def.Unify(probe).Validate(cue.Concrete(true)); err != nil {
			return fmt.Errorf("%s#Status refuses status.%s, which cuerator writes into every status (%v): embed common.#Status in #Status, or the API server drops the conditions and the inventory, and pruning stops",
				where(def.Pos()), p.field, firstReason(err))
		}
	}
	return nil
}

// checkRandom refuses a template whose children read `random` without
// being create-only. What the module alone lets CUE evaluate is checked
// here: the children the defaults produce, and those that turning each
// defaulted switch of the spec (a bool) the other way produces. A child that
// only other specs produce is refused when it renders (see Kind.Render).
func (k *Kind) checkRandom() error {
	if !k.usesRandom {
		return nil
	}
	ctx := k.template.Context()
	tainted := ctx.CompileString("_|_")
	for _, spec := range []map[string]any{nil, flippedSwitches(k.template.LookupPath(cue.ParsePath("cr.spec")))} {
		base := k.template
		if spec != nil {
			base = base.FillPath(cue.ParsePath("cr.spec"), spec)
		}
		// The same template with random as text and with random as an
		// error: a child that is valid with the first and fails with the
		// second reads random.
		plain := base.FillPath(pathRandom, "probe").LookupPath(pathObjects)
		probed := base.FillPath(pathRandom, tainted).LookupPath(pathObjects)
		iter, err := plain.Fields()
		if err != nil {
			continue // incomplete without a CR: nothing more to learn here
		}
		for iter.Next() {
			sel := iter.Selector()
			if iter.Value().Validate() != nil {
				continue
			}
			obj := probed.LookupPath(cue.MakePath(sel))
			if obj.Validate() == nil {
				continue
			}
			mode, _ := iter.Value().LookupPath(cue.MakePath(cue.Str("metadata"), cue.Str("annotations"), cue.Str(child.AnnotationApply))).String()
			if mode == child.ApplyCreateOnly {
				continue
			}
			field, pos := readerOf(iter.Value(), obj, "objects."+sel.String())
			return fmt.Errorf("%s%s reads random, and objects.%s is not create-only: every render draws new random text, so every reconcile would rewrite it; annotate it %s: %s",
				where(pos), field, sel, child.AnnotationApply, child.ApplyCreateOnly)
		}
	}
	return nil
}

// flippedSwitches is a partial spec that turns every bool of def that has a
// default the other way ({backup: {enabled: true}}), or nil when def has none.
func flippedSwitches(def cue.Value) map[string]any {
	out := map[string]any{}
	iter, err := def.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	for iter.Next() {
		v := iter.Value()
		name := iter.Selector().Unquoted()
		switch v.IncompleteKind() {
		case cue.BoolKind:
			if d, ok := v.Default(); ok {
				if b, err := d.Bool(); err == nil {
					out[name] = !b
				}
			}
		case cue.StructKind:
			if sub := flippedSwitches(v); sub != nil {
				out[name] = sub
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// readerOf finds, below the child plain, the innermost field that fails
// in probed (the same child with random as an error): the one that reads
// random. It returns its path and position.
func readerOf(plain, probed cue.Value, path string) (string, token.Pos) {
	pos := plain.Pos()
	for depth := 0; depth < 32; depth++ {
		found := false
		switch plain.IncompleteKind() {
		case cue.StructKind:
			iter, err := plain.Fields()
			if err != nil {
				return path, pos
			}
			for iter.Next() {
				sel := iter.Selector()
				if p := probed.LookupPath(cue.MakePath(sel)); p.Validate() != nil {
					plain, probed, path, found = iter.Value(), p, path+"."+sel.String(), true
					break
				}
			}
		case cue.ListKind:
			iter, err := plain.List()
			if err != nil {
				return path, pos
			}
			for i := 0; iter.Next(); i++ {
				if p := probed.LookupPath(cue.MakePath(cue.Index(i))); p.Validate() != nil {
					plain, probed, path, found = iter.Value(), p, fmt.Sprintf("%s[%d]", path, i), true
					break
				}
			}
		}
		if !found {
			return path, pos
		}
		if p := plain.Pos(); p.IsValid() {
			pos = p
		}
	}
	return path, pos
}

// where is "file:line: " for a CUE position, as Diagnose writes positions.
func where(pos token.Pos) string {
	if !pos.IsValid() || pos.Filename() == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d: ", strings.TrimPrefix(filepath.ToSlash(pos.Filename()), "/"), pos.Line())
}

// firstReason is the first reason of a CUE error, without its path.
func firstReason(err error) string {
	if verr, ok := Diagnose(err).(*ValidationError); ok && len(verr.Errs) > 0 {
		fe := verr.Errs[0]
		fe.Pos = ""
		return fe.String()
	}
	return err.Error()
}

// checkScale refuses a kind whose #CRD.scale reads status fields that the
// template's status does not project.
func (k *Kind) checkScale() error {
	scale := k.API.LookupPath(cue.ParsePath("#CRD.scale"))
	if !scale.Exists() {
		return nil
	}
	for _, name := range []string{"statusReplicasPath", "labelSelectorPath"} {
		p, err := scale.LookupPath(cue.ParsePath(name)).String()
		if err != nil {
			continue // crdgen reports a missing or malformed path
		}
		field, ok := strings.CutPrefix(p, ".status.")
		if !ok {
			continue
		}
		if !k.template.LookupPath(cue.ParsePath("status." + field)).Exists() {
			return fmt.Errorf("%s#CRD.scale.%s is %q, and the template's status does not project %s: the scale subresource would report nothing there to kubectl scale and autoscalers",
				where(scale.Pos()), name, p, "status."+field)
		}
	}
	return nil
}
