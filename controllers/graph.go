package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// gate orders the children of a template with a graph: it reads the live
// children, renders again with them (children that waited for what they
// read of others render now, if they can), and holds back the children
// whose dependencies are not ready. It returns what to apply, what is
// held, and what the CR's health says of the waits. A template with no
// graph applies everything at once.
func (r *Reconciler) gate(ctx context.Context, rendered *render.Rendered) (toApply, held []*unstructured.Unstructured, waits []apply.Health, err error) {
	if len(rendered.Graph) == 0 {
		return rendered.Objects, nil, nil, nil
	}
	_, lives, err := r.Applier.Health(ctx, rendered.Objects)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := rendered.Observe(render.Observed{Children: observedChildren(rendered, lives)}); err != nil {
		return nil, nil, nil, err
	}
	// Observe may render more children: judge them all, as they are live.
	healths, _, err := r.Applier.Health(ctx, rendered.Objects)
	if err != nil {
		return nil, nil, nil, err
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
			held = append(held, obj)
			waits = append(waits, apply.Health{Object: child.Describe(obj), Status: kstatus.InProgressStatus, Message: "waits until " + why})
			continue
		}
		toApply = append(toApply, obj)
	}
	for _, key := range rendered.Waiting {
		why := notReady(rendered.Graph[key].DependsOn, ready)
		if why == "" {
			why = "what it reads of " + strings.Join(rendered.Graph[key].DependsOn, ", ") + " is observed"
		}
		waits = append(waits, apply.Health{Object: "objects." + key, Status: kstatus.InProgressStatus, Message: "waits until " + why})
	}
	return toApply, held, waits, nil
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
// is absent, so that what reads it waits.
func observedChildren(rendered *render.Rendered, lives []*unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	for i, live := range lives {
		if live == nil || live.GetResourceVersion() == "" {
			continue
		}
		obj := live.DeepCopy()
		unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
		out[rendered.Keys[i]] = obj.Object
	}
	return out
}

func messageSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return fmt.Sprintf(": %s", msg)
}
