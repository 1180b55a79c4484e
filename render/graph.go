package render

import (
	"fmt"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/child"
)

// A template's optional `graph` says, per child key, how that child joins
// the others:
//
//	graph: <key>: {
//		dependsOn?:   [...string] // applied once these children are ready; may read observed.children.<dep>
//		ready?:       bool        // readiness kstatus cannot judge, over observed.children.<key>
//		reason?:      string      // what is said while ready is false
//		leave?:       [...string] // fields set when the child is created, left to others afterwards
//		ignoreDrift?: [...string] // fields others may change without cuerator changing them back
//	}
//
// Paths are dotted, from the object's root: "spec.replicas".
//
// With `deleteInOrder: true` a CR being deleted deletes its children in
// the reverse of that order: those nothing depends on first, each stage
// once the one after it is gone.

var (
	pathGraph         = cue.ParsePath("graph")
	pathDeleteInOrder = cue.ParsePath("deleteInOrder")
)

// Node is what the graph says of one child.
type Node struct {
	DependsOn   []string `json:"dependsOn"`
	Leave       []string `json:"leave"`
	IgnoreDrift []string `json:"ignoreDrift"`
	// HasReady is set when the template judges the child's readiness.
	HasReady bool `json:"hasReady,omitempty"`
}

// Readiness is the template's verdict on one child.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reason says why not, when not ready.
	Reason string `json:"reason,omitempty"`
}

// readGraph decodes the template's graph and checks that it names only
// children the template has, with no dependency cycle.
func readGraph(filled cue.Value, children []string) (map[string]Node, error) {
	g := filled.LookupPath(pathGraph)
	if !g.Exists() {
		return nil, nil
	}
	keys := map[string]bool{}
	for _, k := range children {
		keys[k] = true
	}
	nodes := map[string]Node{}
	iter, err := g.Fields()
	if err != nil {
		return nil, fmt.Errorf("graph: %w", Diagnose(err))
	}
	for iter.Next() {
		key := iter.Selector().String()
		if !keys[key] {
			return nil, fmt.Errorf("graph.%s: no such child in objects", key)
		}
		var n Node
		for field, into := range map[string]*[]string{"dependsOn": &n.DependsOn, "leave": &n.Leave, "ignoreDrift": &n.IgnoreDrift} {
			v := iter.Value().LookupPath(cue.ParsePath(field))
			if !v.Exists() {
				continue
			}
			if err := v.Decode(into); err != nil {
				return nil, fmt.Errorf("graph.%s.%s (a list of strings): %w", key, field, Diagnose(err))
			}
		}
		for _, dep := range n.DependsOn {
			if !keys[dep] || dep == key {
				return nil, fmt.Errorf("graph.%s.dependsOn: %q is not another child in objects", key, dep)
			}
		}
		for _, p := range append(append([]string{}, n.Leave...), n.IgnoreDrift...) {
			if p == "" || strings.HasPrefix(p, "metadata.name") || strings.HasPrefix(p, "apiVersion") || strings.HasPrefix(p, "kind") {
				return nil, fmt.Errorf("graph.%s: field %q cannot be left to others", key, p)
			}
		}
		n.HasReady = iter.Value().LookupPath(cue.ParsePath("ready")).Exists()
		nodes[key] = n
	}
	if cycle := findCycle(nodes); cycle != nil {
		return nil, fmt.Errorf("graph: dependsOn goes round: %s", strings.Join(cycle, " -> "))
	}
	return nodes, nil
}

// findCycle returns a dependency cycle of nodes, or nil.
func findCycle(nodes map[string]Node) []string {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) []string
	visit = func(key string) []string {
		switch state[key] {
		case visiting:
			for i, k := range path {
				if k == key {
					return append(append([]string{}, path[i:]...), key)
				}
			}
		case done:
			return nil
		}
		state[key] = visiting
		path = append(path, key)
		for _, dep := range nodes[key].DependsOn {
			if c := visit(dep); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[key] = done
		return nil
	}
	keys := make([]string, 0, len(nodes))
	for k := range nodes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if c := visit(k); c != nil {
			return c
		}
	}
	return nil
}

// Observe renders r again with what the cluster holds of its children:
// the children that waited for their inputs render now if they can, and
// the template's readiness of each child it judges is evaluated. It
// changes r.
//
// Inputs given once (obs.Inputs) are kept for the next Observe and the
// status projection.
func (r *Rendered) Observe(obs Observed) error {
	obs = r.withInputs(obs)
	r.inputs = obs.Inputs
	obs = r.kind.observed.trim(obs)
	return r.evaluate(&obs)
}

// withInputs is obs with the inputs r was given, unless obs has its own.
func (r *Rendered) withInputs(obs Observed) Observed {
	if obs.Inputs == nil {
		obs.Inputs = r.inputs
	}
	return obs
}

// judge evaluates graph.<key>.ready of each child the template judges, in
// a template filled with what was observed. What cannot be decided (the
// child is not there to observe) is not ready.
func judge(observed cue.Value, graph map[string]Node) map[string]Readiness {
	out := map[string]Readiness{}
	for key, n := range graph {
		if !n.HasReady {
			continue
		}
		node := observed.LookupPath(pathGraph.Append(cue.Str(key)))
		ready, err := node.LookupPath(cue.ParsePath("ready")).Bool()
		switch {
		case err != nil:
			out[key] = Readiness{Reason: "not observed yet (graph." + key + ".ready cannot be decided)"}
		case ready:
			out[key] = Readiness{Ready: true}
		default:
			reason := "graph." + key + ".ready is false"
			if s, err := node.LookupPath(cue.ParsePath("reason")).String(); err == nil && s != "" {
				reason = s
			}
			out[key] = Readiness{Reason: reason}
		}
	}
	return out
}

// FieldRules are the graph's leave and ignoreDrift of each rendered child,
// by the child's inventory ID.
func (r *Rendered) FieldRules() map[string]child.FieldRules {
	var out map[string]child.FieldRules
	for i, key := range r.Keys {
		n := r.Graph[key]
		if len(n.Leave) == 0 && len(n.IgnoreDrift) == 0 {
			continue
		}
		if out == nil {
			out = map[string]child.FieldRules{}
		}
		out[child.EntryOf(r.Objects[i]).ID] = child.FieldRules{Leave: n.Leave, IgnoreDrift: n.IgnoreDrift}
	}
	return out
}

// DeletionStages are the rendered children in the order a CR deleted with
// deleteInOrder deletes them: first the children no other depends on
// (the deepest in dependsOn), last those that depend on nothing.
func (r *Rendered) DeletionStages() [][]*unstructured.Unstructured {
	depth := map[string]int{}
	var depthOf func(key string, seen int) int
	depthOf = func(key string, seen int) int {
		if d, ok := depth[key]; ok || seen > len(r.Graph) {
			return d
		}
		d := 0
		for _, dep := range r.Graph[key].DependsOn {
			d = max(d, depthOf(dep, seen+1)+1)
		}
		depth[key] = d
		return d
	}
	deepest := 0
	for _, key := range r.Keys {
		deepest = max(deepest, depthOf(key, 0))
	}
	stages := make([][]*unstructured.Unstructured, deepest+1)
	for i, key := range r.Keys {
		d := depthOf(key, 0)
		stages[deepest-d] = append(stages[deepest-d], r.Objects[i])
	}
	return stages
}

// Object returns the rendered child of key, or nil when it waits.
func (r *Rendered) Object(key string) *unstructured.Unstructured {
	for i, k := range r.Keys {
		if k == key {
			return r.Objects[i]
		}
	}
	return nil
}
