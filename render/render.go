package render

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"sort"

	"cuelang.org/go/cue"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/child"
)

var (
	pathCR       = cue.ParsePath("cr")
	pathObjects  = cue.ParsePath("objects")
	pathObserve  = cue.ParsePath("observe.pods.matchLabels")
	pathRandom   = cue.ParsePath("random")
	pathObserved = cue.ParsePath("observed")
	pathStatus   = cue.ParsePath("status")
)

// Rendered is the outcome of one render: the children, in apply order.
type Rendered struct {
	Objects []*unstructured.Unstructured
	// Keys[i] is the template's name for Objects[i] (its field in `objects`).
	Keys []string
	// PodSelector selects the pods whose names the status reports; nil when
	// the template observes no pods.
	PodSelector map[string]string

	filled cue.Value
}

// Render unifies cr with the kind's template and returns its children.
// The CR's spec must already carry its defaults where the API server applied
// them; CUE applies the same defaults for offline renders.
func (k *Kind) Render(cr *unstructured.Unstructured) (*Rendered, error) {
	owner := cr
	cr, err := k.inTemplateVersion(cr)
	if err != nil {
		return nil, err
	}
	spec, _, err := unstructured.NestedMap(cr.Object, "spec")
	if err != nil {
		return nil, &ValidationError{Errs: []FieldError{{Path: "spec", Message: "must be an object"}}}
	}
	meta := map[string]any{"name": cr.GetName(), "namespace": cr.GetNamespace()}
	if uid := cr.GetUID(); uid != "" {
		meta["uid"] = string(uid)
	}
	if g := cr.GetGeneration(); g != 0 {
		meta["generation"] = g
	}
	if l := cr.GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if a := cr.GetAnnotations(); len(a) > 0 {
		meta["annotations"] = a
	}
	if spec == nil {
		spec = map[string]any{}
	}

	// Fill a Go value rather than compiling CR bytes: the template's context
	// then does not grow with every render.
	filled := k.template.FillPath(pathCR, map[string]any{"metadata": meta, "spec": spec})
	var random string
	if k.usesRandom {
		// A fresh secret each render (130 bits); a create-only child keeps
		// the first one.
		random = rand.Text()
		filled = filled.FillPath(pathRandom, random)
	}

	// The input first: one bad field is then reported once, by its CR path,
	// not once for every place of the template that uses it.
	if err := filled.LookupPath(pathCR).Validate(cue.Concrete(true)); err != nil {
		return nil, Diagnose(err)
	}
	objects := filled.LookupPath(pathObjects)
	if err := objects.Validate(cue.Concrete(true)); err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: Diagnose(err)}
	}

	out := &Rendered{filled: filled}
	iter, err := objects.Fields()
	if err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("objects: %w", Diagnose(err))}
	}
	for iter.Next() {
		key := iter.Selector().String()
		obj, err := k.decodeChild(key, iter.Value(), owner, random)
		if err != nil {
			return nil, &TemplateError{Dir: k.Dir, Err: err}
		}
		out.Objects = append(out.Objects, obj)
		out.Keys = append(out.Keys, key)
	}
	sort.Sort(byApplyOrder{out})

	if sel := filled.LookupPath(pathObserve); sel.Exists() {
		if err := sel.Decode(&out.PodSelector); err != nil {
			return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("observe.pods.matchLabels: %w", Diagnose(err))}
		}
	}
	return out, nil
}

func (k *Kind) decodeChild(key string, v cue.Value, cr *unstructured.Unstructured, random string) (*unstructured.Unstructured, error) {
	at := "objects." + key
	// Through JSON, so that numbers become int64 as the API machinery expects.
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, Diagnose(err))
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", at, err)
	}
	// Load refuses the children it can see read random without being
	// create-only; one that only this spec produces is refused here.
	if random != "" && !child.CreateOnly(obj) && bytes.Contains(raw, []byte(random)) {
		return nil, fmt.Errorf("%s%s reads random, and is not create-only: every render draws new random text, so every reconcile would rewrite it; annotate it %s: %s",
			where(v.Pos()), at, child.AnnotationApply, child.ApplyCreateOnly)
	}
	gvk := obj.GroupVersionKind()
	if !k.allowsChild(gvk) {
		return nil, fmt.Errorf("%s: %s is not among the template's childKinds", at, gvk)
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s: metadata.name must be set", at)
	}
	if k.Namespaced {
		// A namespaced CR owns children in its own namespace only.
		if ns := obj.GetNamespace(); ns != "" && ns != cr.GetNamespace() {
			return nil, fmt.Errorf("%s: metadata.namespace %q: children must stay in the CR's namespace %q", at, ns, cr.GetNamespace())
		}
		obj.SetNamespace(cr.GetNamespace())
	}
	child.Stamp(obj, k.Owner(cr))
	return obj, nil
}

// byApplyOrder sorts children in the contract's apply order (CRDs and
// Namespaces first), so output is stable across renders.
type byApplyOrder struct{ r *Rendered }

func (s byApplyOrder) Len() int { return len(s.r.Objects) }
func (s byApplyOrder) Swap(i, j int) {
	s.r.Objects[i], s.r.Objects[j] = s.r.Objects[j], s.r.Objects[i]
	s.r.Keys[i], s.r.Keys[j] = s.r.Keys[j], s.r.Keys[i]
}
func (s byApplyOrder) Less(i, j int) bool {
	return child.AppliesBefore(s.r.Objects[i], s.r.Objects[j])
}
