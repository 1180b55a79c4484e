package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the server-side apply field manager of every write.
const FieldManager = "cuerator"

// Applier pushes rendered children to a cluster with server-side apply.
type Applier struct {
	client client.Client
	rm     *ssa.ResourceManager
}

// NewApplier returns an Applier writing through c as field manager cuerator.
func NewApplier(c client.Client) *Applier {
	return &Applier{
		client: c,
		rm:     ssa.NewResourceManager(c, nil, ssa.Owner{Field: FieldManager, Group: "cuerator.dev"}),
	}
}

// ChildError says which child failed and why.
type ChildError struct {
	Object string
	Err    error
}

func (e *ChildError) Error() string { return e.Object + ": " + e.Err.Error() }
func (e *ChildError) Unwrap() error { return e.Err }

// Apply server-side applies objs in order. A child that fails is reported
// by name with the API server's message, and the others are still applied.
// namespace is the owning CR's namespace ("" for a cluster-scoped CR): a
// namespaced CR may only produce namespaced children in it.
func (a *Applier) Apply(ctx context.Context, namespace string, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	if namespace != "" {
		if err := a.checkNamespaced(namespace, objs); err != nil {
			return nil, err
		}
	}
	opts := ssa.DefaultApplyOptions()
	cs := ssa.NewChangeSet()
	var errs []error
	for _, obj := range objs {
		entry, err := a.rm.Apply(ctx, obj, opts)
		if err != nil {
			errs = append(errs, &ChildError{Object: utils.FmtUnstructured(obj), Err: err})
			continue
		}
		cs.Add(*entry)
	}
	return cs, errors.Join(errs...)
}

// checkNamespaced refuses cluster-scoped children and children outside
// namespace before anything is written.
func (a *Applier) checkNamespaced(namespace string, objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		namespaced, err := a.client.IsObjectNamespaced(obj)
		if err != nil {
			return &ChildError{Object: utils.FmtUnstructured(obj), Err: fmt.Errorf("kind not served by the cluster: %w", err)}
		}
		if !namespaced {
			return &ChildError{Object: utils.FmtUnstructured(obj), Err: errors.New("a namespaced CR cannot produce cluster-scoped objects")}
		}
		if obj.GetNamespace() != namespace {
			return &ChildError{Object: utils.FmtUnstructured(obj), Err: fmt.Errorf("must be in the CR's namespace %q", namespace)}
		}
	}
	return nil
}

// Health is a child's state as kstatus (and so Flux and Argo CD) sees it.
type Health struct {
	Object  string
	Status  status.Status
	Message string
}

// Healthy reports whether the child is Current.
func (h Health) Healthy() bool { return h.Status == status.CurrentStatus }

// ChildHealth reads each child from the cluster and computes its kstatus.
func (a *Applier) ChildHealth(ctx context.Context, objs []*unstructured.Unstructured) ([]Health, []*unstructured.Unstructured, error) {
	healths := make([]Health, 0, len(objs))
	lives := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		if err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), live); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", utils.FmtUnstructured(obj), err)
		}
		res, err := status.Compute(live)
		h := Health{Object: strings.TrimSuffix(utils.FmtUnstructured(obj), "/")}
		if err != nil {
			h.Status, h.Message = status.UnknownStatus, err.Error()
		} else {
			h.Status, h.Message = res.Status, res.Message
		}
		healths = append(healths, h)
		lives = append(lives, live)
	}
	return healths, lives, nil
}
