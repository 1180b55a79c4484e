// Package controllers wires the engine to controller-runtime: one generic
// reconciler per kind of the template library.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/cuerator/cuerator/engine"
)

// Reconciler turns the CRs of one kind into their children.
type Reconciler struct {
	Client   client.Client
	Kind     *engine.Kind
	Applier  *engine.Applier
	Recorder events.EventRecorder
	// Timeout bounds one reconcile, API calls included.
	Timeout time.Duration
}

// Reconcile renders the CR, applies its children and reports what it saw.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()

	cr := &unstructured.Unstructured{}
	cr.SetGroupVersionKind(r.Kind.GVK)
	if err := r.Client.Get(ctx, req.NamespacedName, cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cr.GetDeletionTimestamp().IsZero() {
		// Children carry an ownerReference: the garbage collector removes them.
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).V(1).Info("reconciling", "generation", cr.GetGeneration())
	st := newStatus(cr)

	rendered, err := r.Kind.Render(cr)
	if err != nil {
		// Retrying cannot fix a spec or template error; a new generation will.
		reason := "InvalidSpec"
		var verr *engine.ValidationError
		if !errors.As(err, &verr) {
			reason = "TemplateError"
		}
		st.stalled(reason, err.Error())
		r.Recorder.Eventf(cr, nil, corev1.EventTypeWarning, reason, "Render", "%s", err.Error())
		return ctrl.Result{}, r.writeStatus(ctx, cr, st)
	}

	changes, applyErr := r.Applier.Apply(ctx, cr.GetNamespace(), rendered.Objects)
	if changes != nil {
		for _, e := range changes.Entries {
			if e.Action == "created" || e.Action == "configured" {
				r.Recorder.Eventf(cr, nil, corev1.EventTypeNormal, "Applied", "Apply", "%s %s", e.Subject, e.Action)
			}
		}
	}
	if applyErr != nil {
		st.failing("ApplyFailed", applyErr.Error())
		r.Recorder.Eventf(cr, nil, corev1.EventTypeWarning, "ApplyFailed", "Apply", "%s", applyErr.Error())
		return ctrl.Result{}, errors.Join(applyErr, r.writeStatus(ctx, cr, st))
	}

	healths, lives, err := r.Applier.ChildHealth(ctx, rendered.Objects)
	if err != nil {
		return ctrl.Result{}, err
	}
	observed, err := r.observe(ctx, cr, rendered, lives)
	if err != nil {
		return ctrl.Result{}, err
	}
	projected, err := rendered.Status(observed)
	if err != nil {
		st.stalled("TemplateError", err.Error())
		return ctrl.Result{}, r.writeStatus(ctx, cr, st)
	}
	st.projected = projected
	st.inventory = inventory(rendered.Objects)
	st.health(healths)
	return ctrl.Result{}, r.writeStatus(ctx, cr, st)
}

// observe gathers what the template's status projection may use: the live
// children's status and the names of the pods it selects.
func (r *Reconciler) observe(ctx context.Context, cr *unstructured.Unstructured, rendered *engine.Rendered, lives []*unstructured.Unstructured) (engine.Observed, error) {
	obs := engine.Observed{Children: map[string]any{}}
	for i, live := range lives {
		obs.Children[rendered.Keys[i]] = map[string]any{"status": live.Object["status"]}
	}
	if rendered.PodSelector == nil {
		return obs, nil
	}
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, pods, client.InNamespace(cr.GetNamespace()), client.MatchingLabels(rendered.PodSelector)); err != nil {
		return obs, fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp.IsZero() {
			obs.Pods = append(obs.Pods, engine.ObservedPod{Name: p.Name})
		}
	}
	return obs, nil
}

// writeStatus server-side applies the status subresource, so the operator
// owns exactly the status fields it sets and never touches spec.
func (r *Reconciler) writeStatus(ctx context.Context, cr *unstructured.Unstructured, st *status) error {
	patch := &unstructured.Unstructured{}
	patch.SetGroupVersionKind(r.Kind.GVK)
	patch.SetName(cr.GetName())
	patch.SetNamespace(cr.GetNamespace())
	patch.Object["status"] = st.build()
	err := r.Client.Status().Patch(ctx, patch, client.Apply, client.FieldOwner(engine.FieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

func inventory(objs []*unstructured.Unstructured) []any {
	entries := make([]any, 0, len(objs))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		entries = append(entries, map[string]any{
			"id": fmt.Sprintf("%s_%s_%s_%s", o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind),
			"v":  gvk.Version,
		})
	}
	return entries
}

