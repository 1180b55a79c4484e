// Package controllers runs one generic reconciler per kind of the template
// library: it renders each CR (package render), applies its children
// (package apply) and writes what it saw into the CR's status.
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
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// Reconciler turns the CRs of one kind into their children.
type Reconciler struct {
	Client client.Client
	// GVK is the kind this reconciler serves; its template comes from
	// Templates at each reconcile, so a reloaded template takes effect.
	GVK       schema.GroupVersionKind
	Templates *templates
	Applier   *apply.Applier
	Recorder  events.EventRecorder
	// Timeout bounds one reconcile, API calls included.
	Timeout time.Duration
	// ConflictRetry is how often a CR whose child is held by someone else
	// looks again: the adopt annotation goes on an object that sends this
	// CR no event.
	ConflictRetry time.Duration
}

// statusWriteTimeout bounds the status write that ends every reconcile.
const statusWriteTimeout = 10 * time.Second

// Reconcile passes the gates (a template serves the kind, the CR exists and
// is not being deleted), then reconciles the CR in phases. Whatever a phase
// ends with, the status is written once, when Reconcile returns.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
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
	defer func() {
		// The reconcile's own deadline may be what ended it: the status
		// that says so gets a moment of its own.
		writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusWriteTimeout)
		defer cancel()
		retErr = errors.Join(retErr, r.writeStatus(writeCtx, cr, st))
	}()
	st.templates(loadErr)
	if loadErr != nil {
		r.warn(cr, ReasonTemplateLoadFailed, actionRender, templatesMessage(loadErr))
	}
	return r.reconcile(ctx, cr, kind, st)
}

// reconcile runs the phases: render, record new children, apply (and
// prune), read health, project the template's status. Each phase that fails
// leaves st saying why.
func (r *Reconciler) reconcile(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind, st *status) (ctrl.Result, error) {
	rendered, err := r.render(cr, kind)
	if err != nil {
		// Retrying cannot fix a spec or template error; a new generation
		// will. Nothing is applied or pruned from a failed render.
		reason := ReasonInvalidSpec
		if terr := (*render.TemplateError)(nil); errors.As(err, &terr) {
			reason = ReasonTemplateError
		}
		st.stalled(reason, err.Error())
		r.warn(cr, reason, actionRender, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}

	if err := r.recordNewChildren(ctx, cr, rendered, st); err != nil {
		return ctrl.Result{}, err
	}

	res := r.apply(ctx, cr, kind, rendered, st)
	if len(res.Conflicts) > 0 {
		msgs := make([]string, len(res.Conflicts))
		for i, c := range res.Conflicts {
			msgs[i] = c.String()
		}
		st.stalled(ReasonAdoptionRefused, strings.Join(msgs, "; "))
		return ctrl.Result{RequeueAfter: r.ConflictRetry}, nil
	}
	if err := res.Err(); err != nil {
		st.failing(ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}

	healths, lives, err := r.Applier.Health(ctx, rendered.Objects)
	if err != nil {
		st.failing(ReasonHealthCheckFailed, err.Error())
		return ctrl.Result{}, err
	}
	observed, err := r.observe(ctx, cr, rendered, lives)
	if err != nil {
		st.failing(ReasonObserveFailed, err.Error())
		return ctrl.Result{}, err
	}
	projected, err := rendered.Status(observed)
	if err != nil {
		st.stalled(ReasonTemplateError, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	st.projected = projected
	st.health(healths)
	return ctrl.Result{}, nil
}

func (r *Reconciler) render(cr *unstructured.Unstructured, kind *render.Kind) (*render.Rendered, error) {
	defer observePhase(r.GVK, phaseRender)()
	rendered, err := kind.Render(cr)
	if err != nil {
		countRenderError(r.GVK)
	}
	return rendered, err
}

// recordNewChildren is the inventory checkpoint: children about to be
// created are recorded in status before they are created. An operator
// killed between the create and the status write would otherwise leave a
// child that no inventory names, and that no prune could ever find.
func (r *Reconciler) recordNewChildren(ctx context.Context, cr *unstructured.Unstructured, rendered *render.Rendered, st *status) error {
	added := child.InventoryOf(rendered.Objects).Without(child.InventoryFromStatus(cr))
	if len(added) == 0 {
		return nil
	}
	st.inventory = st.inventory.Union(added)
	msg := fmt.Sprintf("applying %d new children", len(added))
	st.set(ConditionReady, metav1.ConditionFalse, ReasonApplying, msg)
	st.set(ConditionReconciling, metav1.ConditionTrue, ReasonApplying, msg)
	return r.writeStatus(ctx, cr, st)
}

// apply pushes the children, prunes what the template dropped, and records
// the outcome in st, events and metrics.
func (r *Reconciler) apply(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind, rendered *render.Rendered, st *status) *apply.Result {
	defer observePhase(r.GVK, phaseApply)()
	res := r.Applier.Apply(ctx, apply.Request{
		Owner:       kind.Owner(cr),
		Objects:     rendered.Objects,
		Previous:    st.inventory,
		ReportDrift: cr.GetAnnotations()[child.AnnotationDrift] == child.DriftReport,
	})
	st.inventory = res.Inventory
	st.drift(res.Drifts)
	r.record(cr, res)
	countApply(r.GVK, client.ObjectKeyFromObject(cr), res)
	return res
}

// changeReasons name the event of each write.
var changeReasons = map[apply.Action]string{
	apply.ActionCreate:    ReasonChildCreated,
	apply.ActionConfigure: ReasonChildConfigured,
	apply.ActionDelete:    ReasonChildDeleted,
	apply.ActionOrphan:    ReasonChildOrphaned,
}

// pastTense of each write, for event notes.
var pastTense = map[apply.Action]string{
	apply.ActionCreate:    "created",
	apply.ActionConfigure: "configured",
	apply.ActionDelete:    "deleted",
	apply.ActionOrphan:    "orphaned",
}

// record turns what the apply did into events.
func (r *Reconciler) record(cr *unstructured.Unstructured, res *apply.Result) {
	for _, c := range res.Changes {
		r.Recorder.Eventf(cr, nil, corev1.EventTypeNormal, changeReasons[c.Action], actionApply, "%s %s", c.Object, pastTense[c.Action])
	}
	for _, d := range res.Drifts {
		action := "corrected"
		if !d.Corrected {
			action = "left in place (drift policy report)"
		}
		r.warn(cr, ReasonDrifted, actionApply, d.String()+"; "+action)
	}
	for _, c := range res.Conflicts {
		r.warn(cr, ReasonAdoptionRefused, actionApply, c.String())
	}
	for _, f := range res.Failed {
		r.warn(cr, ReasonApplyFailed, actionApply, f.Error())
	}
}

func (r *Reconciler) warn(cr *unstructured.Unstructured, reason, action, note string) {
	r.Recorder.Eventf(cr, nil, corev1.EventTypeWarning, reason, action, "%s", note)
}

// observe gathers what the template's status projection may use: the live
// children's status and the names of the pods it selects.
func (r *Reconciler) observe(ctx context.Context, cr *unstructured.Unstructured, rendered *render.Rendered, lives []*unstructured.Unstructured) (render.Observed, error) {
	obs := render.Observed{Children: map[string]any{}}
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
			obs.Pods = append(obs.Pods, render.ObservedPod{Name: p.Name})
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
	err = r.Client.Status().Patch(ctx, patch, client.Apply, client.FieldOwner(child.FieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
