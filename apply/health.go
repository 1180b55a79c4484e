package apply

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// Health is a child's state as kstatus (and so Flux and Argo CD) sees it.
type Health struct {
	Object  string
	Status  status.Status
	Message string
}

// Healthy reports whether the child is Current.
func (h Health) Healthy() bool { return h.Status == status.CurrentStatus }

// Health computes each child's kstatus, and returns the live objects for
// the template's status projection: from known (an apply's Lives, or
// children read a moment ago) where it holds the child, else from the
// informer cache. A child that is not there (yet) is NotFound.
func (a *Applier) Health(ctx context.Context, objs []*unstructured.Unstructured, known map[string]*unstructured.Unstructured) ([]Health, []*unstructured.Unstructured, error) {
	healths := make([]Health, 0, len(objs))
	lives := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		h := Health{Object: child.Describe(obj)}
		var err error
		live := known[child.EntryOf(obj).ID]
		if live == nil {
			live = &unstructured.Unstructured{}
			live.SetGroupVersionKind(obj.GroupVersionKind())
			err = a.fromCache(ctx, func(ctx context.Context) error { return a.children.Get(ctx, client.ObjectKeyFromObject(obj), live) })
		}
		switch {
		case meta.IsNoMatchError(err):
			h.Status, h.Message = status.UnknownStatus, "kind not served by the cluster"
		case errors.As(err, new(*unsyncedError)):
			h.Status, h.Message = status.UnknownStatus, err.Error()
		case apierrors.IsNotFound(err):
			h.Status, h.Message = status.NotFoundStatus, "not found"
		case err != nil:
			return nil, nil, fmt.Errorf("read %s: %w", h.Object, err)
		default:
			h.Status, h.Message = kstatus(live)
			if h.Status != status.CurrentStatus {
				if why := replicaFailure(live); why != "" {
					h.Message += "; " + why
				}
			}
		}
		healths = append(healths, h)
		lives = append(lives, live)
	}
	return healths, lives, nil
}

func kstatus(live *unstructured.Unstructured) (status.Status, string) {
	res, err := status.Compute(live)
	if err != nil {
		return status.UnknownStatus, err.Error()
	}
	return res.Status, res.Message
}

// replicaFailure is the message of a workload's ReplicaFailure condition:
// why its pods cannot be created (a ResourceQuota, Pod Security), which
// kstatus's message, a count of replicas, does not say.
func replicaFailure(live *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "ReplicaFailure" && m["status"] == "True" {
			msg, _ := m["message"].(string)
			return msg
		}
	}
	return ""
}
