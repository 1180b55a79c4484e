package controllers

import (
	"context"
	"fmt"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/cuerator/cuerator/render"
)

// inputReaders remembers which CRs read which inputs, so that news of an
// input (from a metadata-only watch of its kind: the objects themselves
// are read when a CR reads them, never cached) reconciles exactly the CRs
// that read it. Keyed by the inputs' kind and namespace.
type inputReaders struct {
	mu     sync.Mutex
	byCR   map[types.NamespacedName][]render.Input
	byKind map[inputScope]map[types.NamespacedName]bool
}

type inputScope struct {
	gvk       schema.GroupVersionKind
	namespace string
}

// set records what cr reads now (nothing, when it reads no inputs).
func (ir *inputReaders) set(cr types.NamespacedName, inputs []render.Input) {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	for _, in := range ir.byCR[cr] {
		delete(ir.byKind[inputScope{in.GVK, in.Namespace}], cr)
	}
	if len(inputs) == 0 {
		delete(ir.byCR, cr)
		return
	}
	if ir.byCR == nil {
		ir.byCR = map[types.NamespacedName][]render.Input{}
		ir.byKind = map[inputScope]map[types.NamespacedName]bool{}
	}
	ir.byCR[cr] = inputs
	for _, in := range inputs {
		s := inputScope{in.GVK, in.Namespace}
		if ir.byKind[s] == nil {
			ir.byKind[s] = map[types.NamespacedName]bool{}
		}
		ir.byKind[s][cr] = true
	}
}

// readersOf returns the CRs that read obj, of kind gvk.
func (ir *inputReaders) readersOf(gvk schema.GroupVersionKind, obj client.Object) []types.NamespacedName {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	var out []types.NamespacedName
	for _, ns := range []string{obj.GetNamespace(), ""} {
		for cr := range ir.byKind[inputScope{gvk, ns}] {
			for _, in := range ir.byCR[cr] {
				if in.GVK == gvk && in.Namespace == obj.GetNamespace() && reads(in, obj) {
					out = append(out, cr)
					break
				}
			}
		}
	}
	return out
}

func reads(in render.Input, obj client.Object) bool {
	if in.Name != "" {
		return in.Name == obj.GetName()
	}
	return labels.SelectorFromSet(in.MatchLabels).Matches(labels.Set(obj.GetLabels()))
}

// inputChanged maps news of an input to the CRs that read it; their
// settled state is dropped first, so that they render again.
func (r *Reconciler) inputChanged(gvk schema.GroupVersionKind) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		var out []reconcile.Request
		for _, cr := range r.inputs.readersOf(gvk, obj) {
			r.settled.drop(cr)
			out = append(out, reconcile.Request{NamespacedName: cr})
		}
		return out
	}
}

// missingInput is an input by name that does not exist.
type missingInput struct{ input render.Input }

func (e *missingInput) Error() string {
	return fmt.Sprintf("waits for inputs.%s: %s not found", e.input.Key, e.input.Describe())
}

// readInputs reads the inputs of a render from the API server: each by
// name as an object, each by labels as a list in name order.
func (r *Reconciler) readInputs(ctx context.Context, inputs []render.Input) (map[string]any, error) {
	out := map[string]any{}
	for _, in := range inputs {
		if in.Name != "" {
			obj := &unstructured.Unstructured{}
			obj.SetGroupVersionKind(in.GVK)
			err := r.Reader.Get(ctx, client.ObjectKey{Namespace: in.Namespace, Name: in.Name}, obj)
			if apierrors.IsNotFound(err) {
				return nil, &missingInput{input: in}
			}
			if err != nil {
				return nil, fmt.Errorf("read inputs.%s (%s): %w", in.Key, in.Describe(), err)
			}
			unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
			out[in.Key] = obj.Object
			continue
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(in.GVK.GroupVersion().WithKind(in.GVK.Kind + "List"))
		if err := r.Reader.List(ctx, list, client.InNamespace(in.Namespace), client.MatchingLabels(in.MatchLabels)); err != nil {
			return nil, fmt.Errorf("read inputs.%s (%s): %w", in.Key, in.Describe(), err)
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].GetName() < list.Items[j].GetName() })
		items := make([]any, len(list.Items))
		for i := range list.Items {
			unstructured.RemoveNestedField(list.Items[i].Object, "metadata", "managedFields")
			items[i] = list.Items[i].Object
		}
		out[in.Key] = items
	}
	return out, nil
}
