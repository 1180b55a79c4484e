package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
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
	// Unchecked lists the keys of the children that CheckChildren left
	// unchecked: their kinds (a CRD's) have no built-in schema. Empty
	// unless the library checks children.
	Unchecked []string
	// Waiting are the keys of children that depend on others (graph) and
	// cannot be rendered until what they read of those is observed.
	Waiting []string
	// Graph is what the template's graph says of each child that it names.
	Graph map[string]Node
	// Readiness is the template's verdict on the children whose readiness
	// it judges (graph.<key>.ready), once Observe has run.
	Readiness map[string]Readiness
	// Inputs are the objects the template reads. Until Observe is given
	// them (PendingInputs), nothing is rendered.
	Inputs        []Input
	PendingInputs bool
	// DeleteInOrder: the CR's children are deleted in the reverse of the
	// graph's order when it is (DeletionStages).
	DeleteInOrder bool
	// inputs are the inputs Observe was given, kept for later Observes and
	// the status projection.
	inputs map[string]any

	kind  *Kind
	owner *unstructured.Unstructured
	// input and random are what the template was filled with: a status
	// projection fills them again.
	input  map[string]any
	random string
	// status is the template's status as the render's own evaluation
	// projects it; statusKnown is false when it is not concrete there.
	status      map[string]any
	statusKnown bool
}

// evaluation is what evaluating a template yields, in whichever process:
// the children (not yet stamped as the CR's, in the template's order), their
// keys, the pod selector and the graph.
type evaluation struct {
	objects     []*unstructured.Unstructured
	keys        []string
	podSelector map[string]string
	unchecked   []string
	waiting     []string
	graph       map[string]Node
	readiness   map[string]Readiness
	inputs      []Input
	// pendingInputs: the template reads inputs, and none were given.
	pendingInputs bool
	deleteInOrder bool
	// status is the status the evaluation projects from what it was given;
	// statusKnown is false when that is not concrete.
	status      map[string]any
	statusKnown bool
}

// Render unifies cr with the kind's template and returns its children.
// The CR's spec must already carry its defaults where the API server applied
// them; CUE applies the same defaults for offline renders. A render runs
// under its library's Budget; one over it returns a *BudgetError.
func (k *Kind) Render(cr *unstructured.Unstructured) (*Rendered, error) {
	owner := cr
	cr, err := k.inTemplateVersion(cr)
	if err != nil {
		return nil, err
	}
	input, err := inputOf(cr)
	if err != nil {
		return nil, err
	}
	env := k.environment()
	var random string
	if k.usesRandom {
		random = env.random()
	}
	out := &Rendered{kind: k, owner: owner, input: input, random: random}
	if err := out.evaluate(nil); err != nil {
		return nil, err
	}
	return out, nil
}

// Clone returns a copy of r that a reconcile may change (Observe, an
// apply) without changing r: its children are deep copies, and what no
// one changes in place (the graph, the inputs, the status as rendered) is
// shared.
func (r *Rendered) Clone() *Rendered {
	out := *r
	out.Objects = make([]*unstructured.Unstructured, len(r.Objects))
	for i, obj := range r.Objects {
		out.Objects[i] = obj.DeepCopy()
	}
	out.Keys = slices.Clone(r.Keys)
	return &out
}

// evaluate (re)renders r's input with observed (nil before anything is),
// within the budget, and takes the outcome.
func (r *Rendered) evaluate(observed *Observed) error {
	k, env := r.kind, r.kind.environment()
	key, memo := keyOf(k.Dir, "render", r.input, observed)
	if memo {
		if err := env.overBudget.get(key); err != nil {
			return err
		}
	}
	ev, err := env.eval.render(k, r.input, r.random, observed)
	if berr := (*BudgetError)(nil); memo && errors.As(err, &berr) {
		env.overBudget.put(key, berr)
	}
	if err != nil {
		return err
	}
	r.Objects, r.Keys, r.PodSelector, r.Unchecked = ev.objects, ev.keys, ev.podSelector, ev.unchecked
	r.Waiting, r.Graph, r.Readiness = ev.waiting, ev.graph, ev.readiness
	r.Inputs, r.PendingInputs, r.DeleteInOrder = ev.inputs, ev.pendingInputs, ev.deleteInOrder
	r.status, r.statusKnown = ev.status, ev.statusKnown
	// Children are owned by the CR as it was read, in its own version.
	stamp := k.Owner(r.owner)
	for _, obj := range r.Objects {
		child.Stamp(obj, stamp)
	}
	sort.Sort(byApplyOrder{r})
	return nil
}

// inputOf is what a template's `cr` is filled with: the CR's metadata and
// spec.
func inputOf(cr *unstructured.Unstructured) (map[string]any, error) {
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
	return map[string]any{"metadata": meta, "spec": spec}, nil
}

// fill fills the template with a CR's input and random text.
func (k *Kind) fill(input map[string]any, random string) cue.Value {
	return k.fillWith(input, random, nil)
}

// fillWith is fill with observed as well, unless it is nil. Everything is
// filled in one unification: each FillPath evaluates the whole template
// anew, so one per field would evaluate it two or three times.
func (k *Kind) fillWith(input map[string]any, random string, observed any) cue.Value {
	// Fill a Go value rather than compiling CR bytes: the template's context
	// then does not grow with every render.
	fields := map[string]any{pathCR.String(): input}
	if k.usesRandom {
		// A fresh secret each render (130 bits); a create-only child keeps
		// the first one.
		fields[pathRandom.String()] = random
	}
	if observed != nil {
		fields[pathObserved.String()] = observed
	}
	return k.template.FillPath(cue.MakePath(), fields)
}

// evaluate fills the template and decodes its children, within the
// budget's limits on their number and size, and checks them against their
// kinds' built-in schemas if the library does. It is the work a worker
// process does, and what an in-process render runs under its deadline.
func (k *Kind) evaluate(input map[string]any, random string, observed *Observed, b Budget) (*evaluation, error) {
	var obs any // nil, not a nil *Observed, when nothing was observed
	if observed != nil {
		obs = observed.normalized()
	}
	filled := k.fillWith(input, random, obs)

	// The input first: one bad field is then reported once, by its CR path,
	// not once for every place of the template that uses it.
	if err := filled.LookupPath(pathCR).Validate(cue.Concrete(true)); err != nil {
		return nil, Diagnose(err)
	}
	namespace, _ := input["metadata"].(map[string]any)["namespace"].(string)
	out := &evaluation{}
	var err error
	if out.inputs, err = k.readInputs(filled, namespace); err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: err}
	}
	if len(out.inputs) > 0 && (observed == nil || observed.Inputs == nil) {
		out.pendingInputs = true
		return out, nil
	}
	objects := filled.LookupPath(pathObjects)
	if err := objects.Validate(); err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: Diagnose(err)}
	}

	var keys []string
	values := map[string]cue.Value{}
	iter, err := objects.Fields()
	if err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("objects: %w", Diagnose(err))}
	}
	for iter.Next() {
		key := iter.Selector().String()
		if len(keys) == b.Children {
			return nil, &BudgetError{Budget: BudgetChildren, Limit: fmt.Sprintf("%d children", b.Children),
				Detail: fmt.Sprintf("objects has more than %d", b.Children)}
		}
		keys = append(keys, key)
		values[key] = iter.Value()
	}
	if out.graph, err = readGraph(filled, keys); err != nil {
		return nil, &TemplateError{Dir: k.Dir, Err: err}
	}
	if v := filled.LookupPath(pathDeleteInOrder); v.Exists() {
		if out.deleteInOrder, err = v.Bool(); err != nil {
			return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("deleteInOrder (a bool): %w", Diagnose(err))}
		}
	}

	total := 0
	var issues []FieldError
	for _, key := range keys {
		v := values[key]
		if err := v.Validate(cue.Concrete(true)); err != nil {
			// Incomplete, and it depends on other children: it reads what
			// is observed of them, and waits until it is. Anything else is
			// the template's fault.
			if len(out.graph[key].DependsOn) > 0 {
				out.waiting = append(out.waiting, key)
				continue
			}
			return nil, &TemplateError{Dir: k.Dir, Err: Diagnose(err)}
		}
		obj, size, err := k.decodeChild(key, v, namespace, random, b)
		if err != nil {
			return nil, err
		}
		if total += size; total > b.Bytes {
			return nil, &BudgetError{Budget: BudgetSize, Limit: mib(b.Bytes) + " of children",
				Detail: fmt.Sprintf("the children up to objects.%s are %s of JSON together", key, mib(total))}
		}
		out.objects = append(out.objects, obj)
		out.keys = append(out.keys, key)
		if k.environment().checkChildren {
			found, known := checkChild(obj, v, k.Dir, "objects."+key)
			issues = append(issues, found...)
			if !known {
				out.unchecked = append(out.unchecked, key)
			}
		}
	}
	if len(issues) > 0 {
		return nil, &TemplateError{Dir: k.Dir, Err: &ValidationError{Errs: issues}}
	}
	if observed != nil {
		out.readiness = judge(filled, out.graph)
	}

	if sel := filled.LookupPath(pathObserve); sel.Exists() {
		if err := sel.Decode(&out.podSelector); err != nil {
			return nil, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("observe.pods.matchLabels: %w", Diagnose(err))}
		}
	}
	out.status, out.statusKnown = concreteStatus(filled)
	return out, nil
}

// decodeChild turns the child at objects.<key> into an object, and returns
// its size as JSON.
func (k *Kind) decodeChild(key string, v cue.Value, namespace, random string, b Budget) (*unstructured.Unstructured, int, error) {
	at := "objects." + key
	// Through JSON, so that numbers become int64 as the API machinery expects.
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, 0, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("%s: %w", at, Diagnose(err))}
	}
	if len(raw) > b.ChildBytes {
		return nil, 0, &BudgetError{Budget: BudgetSize, Limit: mib(b.ChildBytes) + " a child",
			Detail: fmt.Sprintf("%s is %s of JSON; the API server stores no ConfigMap or Secret above 1 MiB, and etcd no object above 1.5 MiB", at, mib(len(raw)))}
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, 0, &TemplateError{Dir: k.Dir, Err: fmt.Errorf("%s: not a Kubernetes object: %w", at, err)}
	}
	fail := func(format string, args ...any) (*unstructured.Unstructured, int, error) {
		return nil, 0, &TemplateError{Dir: k.Dir, Err: fmt.Errorf(format, args...)}
	}
	// Load refuses the children it can see read random without being
	// create-only; one that only this spec produces is refused here.
	if random != "" && !child.CreateOnly(obj) && bytes.Contains(raw, []byte(random)) {
		return fail("%s%s reads random, and is not create-only: every render draws new random text, so every reconcile would rewrite it; annotate it %s: %s",
			where(v.Pos()), at, child.AnnotationApply, child.ApplyCreateOnly)
	}
	gvk := obj.GroupVersionKind()
	if !k.allowsChild(gvk) {
		return fail("%s: %s is not among the template's childKinds", at, gvk)
	}
	if obj.GetName() == "" {
		return fail("%s: metadata.name must be set", at)
	}
	if k.Namespaced {
		// A namespaced CR owns children in its own namespace only.
		if ns := obj.GetNamespace(); ns != "" && ns != namespace {
			return fail("%s: metadata.namespace %q: children must stay in the CR's namespace %q", at, ns, namespace)
		}
		obj.SetNamespace(namespace)
	}
	return obj, len(raw), nil
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
