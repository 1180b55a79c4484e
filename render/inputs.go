package render

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A template may read objects it does not produce (a team's ConfigMap of
// settings, a Secret another tool writes), in the CR's namespace:
//
//	inputKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
//	inputs: <name>: {apiVersion: "v1", kind: "ConfigMap", name: "shop-settings"}
//	inputs: <name>: {apiVersion: "v1", kind: "ConfigMap", matchLabels: {team: "shop"}}
//
// cuerator fills observed.inputs.<name> with the live object (by name) or
// a list of them (by labels, in name order), and renders again when one
// changes. An input by name that does not exist makes the CR wait: nothing
// is applied or pruned until it does.

var (
	pathInputs     = cue.ParsePath("inputs")
	pathInputKinds = cue.ParsePath("inputKinds")
)

// Input is one object, or set of objects, a render reads.
type Input struct {
	// Key is its field in inputs.
	Key string `json:"key"`
	// GVK is its kind, one of the kind's InputKinds.
	GVK schema.GroupVersionKind `json:"gvk"`
	// Namespace is the CR's (empty for a cluster-scoped CR).
	Namespace string `json:"namespace,omitempty"`
	// Name names one object; MatchLabels selects several.
	Name        string            `json:"name,omitempty"`
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// Describe names the input as kubectl would, for messages.
func (in Input) Describe() string {
	what := in.GVK.Kind + "/"
	if in.Namespace != "" {
		what += in.Namespace + "/"
	}
	if in.Name != "" {
		return what + in.Name
	}
	return what + "*" + " with labels " + metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: in.MatchLabels})
}

// readInputs decodes the template's inputs for one CR.
func (k *Kind) readInputs(filled cue.Value, namespace string) ([]Input, error) {
	v := filled.LookupPath(pathInputs)
	if !v.Exists() {
		return nil, nil
	}
	iter, err := v.Fields()
	if err != nil {
		return nil, fmt.Errorf("inputs: %w", Diagnose(err))
	}
	var out []Input
	for iter.Next() {
		key := iter.Selector().String()
		var decl struct {
			APIVersion  string            `json:"apiVersion"`
			Kind        string            `json:"kind"`
			Name        string            `json:"name"`
			MatchLabels map[string]string `json:"matchLabels"`
		}
		if err := iter.Value().Decode(&decl); err != nil {
			return nil, fmt.Errorf("inputs.%s ({apiVersion, kind, name or matchLabels}): %w", key, Diagnose(err))
		}
		gv, err := schema.ParseGroupVersion(decl.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("inputs.%s.apiVersion %q: %w", key, decl.APIVersion, err)
		}
		in := Input{Key: key, GVK: gv.WithKind(decl.Kind), Name: decl.Name, MatchLabels: decl.MatchLabels}
		if !slices.Contains(k.InputKinds, in.GVK) {
			return nil, fmt.Errorf("inputs.%s: %s is not among the template's inputKinds", key, in.GVK)
		}
		if (in.Name == "") == (len(in.MatchLabels) == 0) {
			return nil, fmt.Errorf("inputs.%s: set either name or matchLabels", key)
		}
		if k.Namespaced {
			in.Namespace = namespace // a CR reads in its own namespace only
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// InputsNeeded says, when r waits for its inputs (PendingInputs), which
// they are: a render with no cluster cannot read them.
func (r *Rendered) InputsNeeded() error {
	if !r.PendingInputs {
		return nil
	}
	names := make([]string, len(r.Inputs))
	for i, in := range r.Inputs {
		names[i] = "inputs." + in.Key + " (" + in.Describe() + ")"
	}
	return fmt.Errorf("the template reads objects of the cluster, which are not read here: %s", strings.Join(names, ", "))
}
