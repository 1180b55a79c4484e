package preview

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Verdict is what the Differ's templates would do to one live CR.
type Verdict struct {
	// CR is Kind/namespace/name.
	CR string
	// Err is why its render, or a dry-run of a child, would fail.
	Err error
	// Diff lists the children that would be created, changed or pruned
	// (nil when Err is set).
	Diff *CRDiff
}

// Preflight renders every CR in the cluster of each kind of the library
// (in namespace, or in all when it is ""), as the operator would with the
// library's templates, and compares each with the cluster as Diff does:
// before a new template module rolls out, it shows the CRs it would fail,
// change or prune. The cluster is not changed. The error is for what stops
// the preflight itself, such as a list the API server refuses.
func (d *Differ) Preflight(ctx context.Context, namespace string) ([]Verdict, error) {
	var out []Verdict
	for _, kind := range d.lib.Kinds() {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(kind.GVK.GroupVersion().WithKind(kind.GVK.Kind + "List"))
		var opts []client.ListOption
		if namespace != "" && kind.Namespaced {
			opts = append(opts, client.InNamespace(namespace))
		}
		err := d.c.List(ctx, list, opts...)
		if meta.IsNoMatchError(err) {
			served, err := d.servedVersions(kind.GVK.GroupKind())
			if err != nil {
				return nil, err
			}
			if len(served) > 0 {
				return nil, fmt.Errorf("the cluster serves %s as %v, not %s: its CRs need the new CRD, with a conversion, before these templates can render them", kind.GVK.GroupKind(), served, kind.GVK.Version)
			}
			continue // a new kind: no CR to check
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind.GVK.GroupKind(), err)
		}
		for i := range list.Items {
			cr := &list.Items[i]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			diff, err := d.Diff(ctx, cr)
			out = append(out, Verdict{CR: child.Describe(cr), Err: err, Diff: diff})
		}
	}
	return out, nil
}

// servedVersions lists the versions the cluster serves gk at.
func (d *Differ) servedVersions(gk schema.GroupKind) ([]string, error) {
	mappings, err := d.c.RESTMapper().RESTMappings(gk)
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", gk, err)
	}
	var versions []string
	for _, m := range mappings {
		versions = append(versions, m.GroupVersionKind.Version)
	}
	return versions, nil
}
