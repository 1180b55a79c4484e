package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// gated is what gate decided: what to apply, what is held, what the CR's
// health says of the waits, and the version of each child the decisions
// were made from.
type gated struct {
	toApply, held []*unstructured.Unstructured
	waits         []apply.Health
	// decidedAt is, by key, the resourceVersion ("" when absent) of each
	// child whose live state the decisions read; nil when they read none.
	// A child that changed after it was read makes them stale: see
	// settledVersions.
	decidedAt map[string]string
}

// gate orders the children of a template with a graph: it reads the live
// children, renders again with them (children that waited for what they
// read of others render now, if they can), and holds back the children
// whose dependencies are not ready. A template with no graph applies
// everything at once.
func (r *Reconciler) gate(ctx context.Context, rendered *render.Rendered) (gated, error) {
	if len(rendered.Graph) == 0 {
		return gated{toApply: rendered.Objects}, nil
	}
	_, lives, err := r.Applier.Health(ctx, rendered.Objects, nil)
	if err != nil {
		return gated{}, err
	}
	found := make(map[string]*unstructured.Unstructured, len(lives))
	for i, live := range lives {
		if live.GetResourceVersion() != "" {
			found[child.EntryOf(rendered.Objects[i]).ID] = live
		}
	}
	readKeys := rendered.Keys // Observe replaces them
	if err := rendered.Observe(render.Observed{Children: observedChildren(rendered, lives)}); err != nil {
		return gated{}, err
	}
	// Observe may render more children: judge them all, as they are live,
	// reading again only those not found above.
	healths, _, err := r.Applier.Health(ctx, rendered.Objects, found)
	if err != nil {
		return gated{}, err
	}
	var out gated
	if readsLives(rendered) {
		out.decidedAt = make(map[string]string, len(lives))
		for i, live := range lives {
			out.decidedAt[readKeys[i]] = live.GetResourceVersion()
		}
	}
	ready := map[string]string{} // key -> why not ready; "" when ready
	for i, h := range judged(rendered, healths) {
		ready[rendered.Keys[i]] = ""
		if !h.Healthy() {
			ready[rendered.Keys[i]] = h.Object + " is ready (it is " + string(h.Status) + messageSuffix(h.Message) + ")"
		}
	}
	for i, obj := range rendered.Objects {
		if why := notReady(rendered.Graph[rendered.Keys[i]].DependsOn, ready); why != "" {
			out.held = append(out.held, obj)
			out.waits = append(out.waits, apply.Health{Object: child.Describe(obj), Status: kstatus.InProgressStatus, Message: "waits until " + why})
			continue
		}
		out.toApply = append(out.toApply, obj)
	}
	for _, key := range rendered.Waiting {
		why := notReady(rendered.Graph[key].DependsOn, ready)
		if why == "" {
			why = "what it reads of " + strings.Join(rendered.Graph[key].DependsOn, ", ") + " is observed"
		}
		out.waits = append(out.waits, apply.Health{Object: "objects." + key, Status: kstatus.InProgressStatus, Message: "waits until " + why})
	}
	return out, nil
}

// readsLives reports whether what gate decided for rendered depends on the
// children's live state: a readiness the template judges, a child that
// waits for another, or one that waits for what it reads of another.
func readsLives(rendered *render.Rendered) bool {
	if len(rendered.Waiting) > 0 {
		return true
	}
	for _, n := range rendered.Graph {
		if len(n.DependsOn) > 0 || n.HasReady {
			return true
		}
	}
	return false
}

// settledVersions is the version of each child (rendered.Objects, whose
// live state is lives) that the reconcile's outcome describes, for the
// next reconcile to find it unchanged. The status is computed from lives,
// but what gate decided was read before the apply: a child that changed
// since (created, corrected, or changed by someone else) keeps the version
// gate read, so that the news of its change reconciles the CR again, with
// decisions made from what it is now.
func settledVersions(rendered *render.Rendered, lives []*unstructured.Unstructured, g gated) []apply.Seen {
	out := make([]apply.Seen, 0, len(lives))
	for i, live := range lives {
		version := live.GetResourceVersion()
		key := rendered.Keys[i]
		if decided, read := g.decidedAt[key]; read {
			version = decided
		} else if g.decidedAt != nil && rendered.Graph[key].HasReady {
			version = "" // judged before it was observed
		}
		out = append(out, apply.SeenAt(rendered.Objects[i], version))
	}
	return out
}

// notReady says which of deps is not ready, and why; "" when all are.
func notReady(deps []string, ready map[string]string) string {
	for _, dep := range deps {
		why, rendered := ready[dep]
		if !rendered {
			return "objects." + dep + " renders"
		}
		if why != "" {
			return why
		}
	}
	return ""
}

// judged is healths (of rendered.Objects, in order) with the template's own
// readiness of the children it judges: a child kstatus calls Current is
// not ready while the template's graph.<key>.ready is false.
func judged(rendered *render.Rendered, healths []apply.Health) []apply.Health {
	if len(rendered.Readiness) == 0 {
		return healths
	}
	out := make([]apply.Health, len(healths))
	copy(out, healths)
	for i, key := range rendered.Keys {
		if v, judges := rendered.Readiness[key]; judges && !v.Ready && out[i].Healthy() {
			out[i].Status, out[i].Message = kstatus.InProgressStatus, v.Reason
		}
	}
	return out
}

// observedChildren is what the template may read of its live children:
// each one's metadata, spec and status by its key. A child not there yet
// is absent, so that what reads it waits. The objects are shared with
// lives, not copied (an evaluation only reads them), but for the metadata
// that leaves managedFields out.
func observedChildren(rendered *render.Rendered, lives []*unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	for i, live := range lives {
		if live == nil || live.GetResourceVersion() == "" {
			continue
		}
		obj := maps.Clone(live.Object)
		if md, ok := obj["metadata"].(map[string]any); ok {
			md = maps.Clone(md)
			delete(md, "managedFields")
			obj["metadata"] = md
		}
		out[rendered.Keys[i]] = obj
	}
	return out
}

func messageSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return fmt.Sprintf(": %s", msg)
}
