package render

import (
	"encoding/json"
	"fmt"

	"cuelang.org/go/cue"
)

// Observed is what the controller saw in the cluster, for the template's
// status projection.
type Observed struct {
	// Pods are the pods that observe.pods.matchLabels selects.
	Pods []ObservedPod `json:"pods"`
	// Children holds each child's live status by its template key.
	Children map[string]any `json:"children"`
}

// ObservedPod is the part of a pod a status projection may use.
type ObservedPod struct {
	Name  string `json:"name"`
	Phase string `json:"phase,omitempty"`
}

// Status evaluates the template's `status` with what was observed. It
// returns nil when the template projects no status.
func (r *Rendered) Status(obs Observed) (map[string]any, error) {
	if obs.Pods == nil {
		obs.Pods = []ObservedPod{}
	}
	if obs.Children == nil {
		obs.Children = map[string]any{}
	}
	v := r.filled.FillPath(pathObserved, obs).LookupPath(pathStatus)
	if !v.Exists() {
		return nil, nil
	}
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
