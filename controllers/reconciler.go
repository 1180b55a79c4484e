// Package controllers wires the engine to controller-runtime: one generic
// reconciler per kind of the template library.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/cuerator/cuerator/engine"
)

// Reconciler turns the CRs of one kind into their children.
type Reconciler struct {
	Client client.Client
	// GVK is the kind this reconciler serves; its template comes from
	// Templates at each reconcile, so a reloaded template takes effect.
	GVK       schema.GroupVersionKind
	Templates *templates
	Applier   *engine.Applier
	Recorder  events.EventRecorder
	// Timeout bounds one reconcile, API calls included.
	Timeout time.Duration
	// ConflictRetry is how often a CR whose child is held by someone else
	// looks again: the adopt annotation goes on an object that sends this
	// CR no event.
	ConflictRetry time.Duration
}

// Reconcile renders the CR, applies its children, prunes what the template
// no longer produces and reports what it saw in the CR's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()

	kind, loadErr := r.Templates.kind(r.GVK)
	if kind == nil {
		// Removed from the templates: its children stay as they are.
		return ctrl.Result{}, nil
	}
	cr := &unstructured.Unstructured{}
	cr.SetGroupVersionKind(r.GVK)
	if err := r.Client.Get(ctx, req.NamespacedName, cr); err != nil {
		if apierrors.IsNotFound(err) {
			r.Applier.Forget(req.NamespacedName)
			forgetChildren(r.GVK, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cr.GetDeletionTimestamp().IsZero() {
		// Children carry an ownerReference: the garbage collector removes them.
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).V(1).Info("reconciling", "generation", cr.GetGeneration())
	st := newStatus(cr)
	if loadErr != nil {
		r.warn(cr, "TemplateLoadFailed", "Render", "the last good template stays in use: "+loadErr.Error())
	}
	st.templates(loadErr)

	renderDone := observePhase(r.GVK, phaseRender)
	rendered, err := kind.Render(cr)
	renderDone()
	if err != nil {
		countRenderError(r.GVK)
		// Retrying cannot fix a spec or template error; a new generation
		// will. Nothing is applied or pruned from a failed render.
		reason := "InvalidSpec"
		if terr := (*engine.TemplateError)(nil); errors.As(err, &terr) {
			reason = "TemplateError"
		}
		st.stalled(reason, err.Error())
		r.warn(cr, reason, "Render", err.Error())
		return ctrl.Result{}, r.writeStatus(ctx, cr, st)
	}

	// Record children about to be created before creating them: an
	// operator killed between the create and the status write would
	// otherwise leave a child that no inventory names, and that no prune
	// could ever find.
	previous := engine.InventoryFromStatus(cr)
	if added := engine.InventoryOf(rendered.Objects).Without(previous); len(added) > 0 {
		st.inventory = previous.Union(added)
		st.set(ConditionReady, metav1.ConditionFalse, "Applying", fmt.Sprintf("applying %d new children", len(added)))
		st.set(ConditionReconciling, metav1.ConditionTrue, "Applying", fmt.Sprintf("applying %d new children", len(added)))
		if err := r.writeStatus(ctx, cr, st); err != nil {
			return ctrl.Result{}, err
		}
	}

	applyDone := observePhase(r.GVK, phaseApply)
	res := r.Applier.Apply(ctx, engine.Request{
		Owner:       cr,
		Kind:        kind,
		Objects:     rendered.Objects,
		Previous:    st.inventory,
		ReportDrift: cr.GetAnnotations()[engine.AnnotationDrift] == "report",
	})
	applyDone()
	st.inventory = res.Inventory
	r.record(cr, res)
	countApply(r.GVK, req.NamespacedName, res)
	st.drift(res.Drifts)

	if len(res.Conflicts) > 0 {
		msgs := make([]string, len(res.Conflicts))
		for i, c := range res.Conflicts {
			msgs[i] = c.String()
		}
		st.stalled("AdoptionRefused", strings.Join(msgs, "; "))
		return ctrl.Result{RequeueAfter: r.ConflictRetry}, r.writeStatus(ctx, cr, st)
	}
	if err := res.Err(); err != nil {
		st.failing("ApplyFailed", err.Error())
		return ctrl.Result{}, errors.Join(err, r.writeStatus(ctx, cr, st))
	}

	healths, lives, err := r.Applier.Health(ctx, rendered.Objects)
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
	st.health(healths)
	return ctrl.Result{}, r.writeStatus(ctx, cr, st)
}

// record turns what the apply did into events.
func (r *Reconciler) record(cr *unstructured.Unstructured, res *engine.Result) {
	for _, c := range res.Changes {
		r.Recorder.Eventf(cr, nil, corev1.EventTypeNormal, "Child"+strings.ToUpper(string(c.Action[:1]))+string(c.Action[1:]), "Apply", "%s %s", c.Object, c.Action)
	}
	for _, d := range res.Drifts {
		action := "corrected"
		if !d.Corrected {
			action = "left in place (drift policy report)"
		}
		r.warn(cr, "Drifted", "Apply", d.String()+"; "+action)
	}
	for _, c := range res.Conflicts {
		r.warn(cr, "AdoptionRefused", "Apply", c.String())
	}
	for _, f := range res.Failed {
		r.warn(cr, "ApplyFailed", "Apply", f.Error())
	}
}

func (r *Reconciler) warn(cr *unstructured.Unstructured, reason, action, note string) {
	r.Recorder.Eventf(cr, nil, corev1.EventTypeWarning, reason, action, "%s", note)
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
	defer observePhase(r.GVK, phaseStatus)()
	desired, err := st.build()
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(desired, cr.Object["status"]) {
		return nil // an unchanged status costs no request
	}
	patch := &unstructured.Unstructured{}
	patch.SetGroupVersionKind(r.GVK)
	patch.SetName(cr.GetName())
	patch.SetNamespace(cr.GetNamespace())
	patch.Object["status"] = desired
	err = r.Client.Status().Patch(ctx, patch, client.Apply, client.FieldOwner(engine.FieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
