// Package controllers runs one generic reconciler per kind of the template
// library: it renders each CR (package render), applies its children
// (package apply) and writes what it saw into the CR's status.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// Reconciler turns the CRs of one kind into their children.
type Reconciler struct {
	Client client.Client
	// Reader reads from the API server, not a cache: the template's inputs,
	// and a CR's status where the cache may lag behind this process.
	Reader client.Reader
	// PodsIndexed: the cache indexes pods by label (podLabelIndex). A kind
	// that starts observing pods after the cache started lists them
	// without it.
	PodsIndexed bool
	// GVK is the kind this reconciler serves; its template comes from
	// Templates at each reconcile, so a reloaded template takes effect.
	GVK schema.GroupVersionKind
	// Children are the child kinds of the template that are watched (and
	// indexed by owner): where children no inventory names are looked for.
	Children  *childWatches
	Templates *templates
	Applier   *apply.Applier
	Recorder  events.EventRecorder
	// Timeout bounds one reconcile, API calls included.
	Timeout time.Duration
	// ConflictRetry is how often a CR whose child is held by someone else
	// looks again: the adopt annotation goes on an object that sends this
	// CR no event.
	ConflictRetry time.Duration
	// Identity names this process in the statuses it writes.
	Identity string
	// DeletionTimeout bounds the wait for a stage of children of a CR
	// deleted with deleteInOrder.
	DeletionTimeout time.Duration

	settled settledCRs
	renders keptRenders
	written statusWrites
	// contests are the CRs another process writes too, as far as this one
	// knows.
	contests contests
	// inputs are what each CR's template reads of the cluster.
	inputs inputReaders
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
	cr := &unstructured.Unstructured{}
	cr.SetGroupVersionKind(r.GVK)
	if err := r.read(ctx, req.NamespacedName, cr); err != nil {
		if apierrors.IsNotFound(err) {
			r.Applier.Forget(req.NamespacedName)
			r.settled.drop(req.NamespacedName)
			r.renders.drop(req.NamespacedName)
			r.written.forget(req.NamespacedName)
			r.contests.forget(req.NamespacedName)
			r.inputs.set(req.NamespacedName, nil)
			forgetChildren(r.GVK, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if kind == nil {
		// Removed from the templates: its children stay as they are, and a
		// CR being deleted is not held back by a finalizer of ours.
		r.renders.drop(req.NamespacedName)
		if !cr.GetDeletionTimestamp().IsZero() {
			return ctrl.Result{}, r.keepFinalizers(ctx, cr)
		}
		return ctrl.Result{}, nil
	}
	if !cr.GetDeletionTimestamp().IsZero() {
		r.renders.drop(req.NamespacedName)
		// Children carry an ownerReference: the garbage collector removes
		// them; those with policy Orphan are released first, and a template
		// may ask for its children to go in order.
		return r.finalize(ctx, cr, kind)
	}
	if cr.GetAnnotations()[child.AnnotationSuspend] == "true" {
		r.settled.drop(req.NamespacedName)
		r.renders.drop(req.NamespacedName)
		return ctrl.Result{}, r.suspend(ctx, cr)
	}
	if loadErr == nil && r.unchanged(ctx, cr, kind) {
		return ctrl.Result{}, nil // a resync, or news that changes nothing read
	}
	log.FromContext(ctx).V(1).Info("reconciling", "generation", cr.GetGeneration())

	st := newStatus(cr)
	seen := settled{uid: cr.GetUID(), kind: kind, generation: cr.GetGeneration(), meta: metaDigest(cr)}
	defer func() {
		// The reconcile's own deadline may be what ended it: the status
		// that says so gets a moment of its own.
		writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusWriteTimeout)
		defer cancel()
		version, err := r.writeStatus(writeCtx, cr, st)
		if held := (*heldStatus)(nil); errors.As(err, &held) {
			// Progress details wait their turn; the reconcile comes back then.
			result.RequeueAfter = sooner(result.RequeueAfter, held.wait)
			err = nil
		}
		retErr = errors.Join(retErr, err)
		if st.ready() {
			// Converged: the next render is for a change.
			r.renders.drop(client.ObjectKeyFromObject(cr))
		}
		if retErr == nil && result == (ctrl.Result{}) && loadErr == nil && version != "" {
			seen.version = version
			r.settled.put(client.ObjectKeyFromObject(cr), seen)
		} else {
			r.settled.drop(client.ObjectKeyFromObject(cr))
		}
	}()
	meta.RemoveStatusCondition(&st.conditions, ConditionSuspended)
	st.templates(loadErr)
	if loadErr != nil {
		r.warn(cr, ReasonTemplateLoadFailed, actionRender, templatesMessage(loadErr))
	}
	c := r.contention(ctx, cr, kind, st)
	st.contest(c, r.Identity, r.Templates.digest())
	if c.report {
		r.warn(cr, ReasonContested, actionApply, st.message(ConditionContested))
	}
	if c.hold {
		defer func() {
			// Look again soon: the other process may have stopped.
			result.RequeueAfter = sooner(result.RequeueAfter, r.ConflictRetry)
		}()
	}
	if kind.KeepsReconciler() {
		st.reconciler = &reconcilerID{ID: r.Identity, Templates: r.Templates.digest()}
		st.claim = c.claim
	}
	return r.reconcile(ctx, cr, kind, st, &seen, c.hold)
}

// ownWriteWait bounds how long a reconcile waits for the cache to hold the
// CR as this process's last status write left it, before it reads the CR
// from the API server instead.
const ownWriteWait = 2 * time.Second

// read reads the CR from the cache, once the cache holds it at least as
// this process's last status write left it. A reconcile that follows that
// write at once (news that came during the last one) would otherwise read
// the status from before it: judged against that, a status equal to the
// one before the write would not be written, and the CR would keep saying
// what the last write said.
func (r *Reconciler) read(ctx context.Context, key types.NamespacedName, cr *unstructured.Unstructured) error {
	if err := r.Client.Get(ctx, key, cr); err != nil {
		return err
	}
	wrote := r.written.version(key)
	if wrote == "" || !apply.OlderVersion(cr.GetResourceVersion(), wrote) {
		return nil
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, ownWriteWait, false, func(ctx context.Context) (bool, error) {
		if err := r.Client.Get(ctx, key, cr); err != nil {
			return false, err
		}
		return !apply.OlderVersion(cr.GetResourceVersion(), wrote), nil
	})
	if err == nil || apierrors.IsNotFound(err) {
		return err
	}
	return r.Reader.Get(ctx, key, cr)
}

// suspend records that cr is suspended: its children are left as they are,
// and the generation it last reconciled stays the one observed.
func (r *Reconciler) suspend(ctx context.Context, cr *unstructured.Unstructured) error {
	st := newStatus(cr)
	if g, ok, _ := unstructured.NestedInt64(cr.Object, "status", "observedGeneration"); ok {
		st.generation = g
	}
	st.set(ConditionSuspended, metav1.ConditionTrue, ReasonSuspended,
		child.AnnotationSuspend+` is "true": nothing is applied, corrected or pruned until it is removed`)
	_, err := r.writeStatus(ctx, cr, st)
	return err
}

// reconcile runs the phases: render, apply (and prune), read health,
// project the template's status. Each phase that fails leaves st saying
// why.
//
// No status is written before children are created: a child created by an
// operator stopped before it could record it carries the CR's owner labels,
// and the next reconcile finds it in the cache of children by those labels.
func (r *Reconciler) reconcile(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind, st *status, seen *settled, contested bool) (ctrl.Result, error) {
	rendered, err := r.render(cr, kind, seen)
	if err != nil {
		return r.renderFailed(cr, st, err)
	}
	r.inputs.set(client.ObjectKeyFromObject(cr), rendered.Inputs)
	if rendered.PendingInputs {
		inputs, err := r.readInputs(ctx, rendered.Inputs)
		if missing := (*missingInput)(nil); errors.As(err, &missing) {
			// Nothing applied or pruned: the input's creation reconciles
			// the CR again.
			st.failing(ReasonInputMissing, err.Error())
			return ctrl.Result{}, nil
		}
		if err != nil {
			st.failing(ReasonInputMissing, err.Error())
			return ctrl.Result{}, err
		}
		if err := rendered.Observe(render.Observed{Inputs: inputs}); err != nil {
			return r.renderFailed(cr, st, err)
		}
	}
	if _, err := r.Children.catchUp(gvksOf(rendered.Objects)); err != nil {
		st.failing(ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}
	g, err := r.gate(ctx, rendered)
	if errors.As(err, new(*render.TemplateError)) {
		return r.renderFailed(cr, st, err)
	}
	if err != nil {
		st.failing(ReasonHealthCheckFailed, err.Error())
		return ctrl.Result{}, err
	}
	res := r.apply(ctx, cr, kind, rendered, g.toApply, g.held, st, contested)
	if len(res.Conflicts) > 0 {
		msgs := make([]string, len(res.Conflicts))
		for i, c := range res.Conflicts {
			msgs[i] = c.String()
		}
		st.stalled(ReasonAdoptionRefused, strings.Join(msgs, "; "))
		return ctrl.Result{RequeueAfter: r.ConflictRetry}, nil
	}
	if err := res.Err(); err != nil {
		if res.Permanent() {
			// Refused as invalid: the same apply fails again until the CR,
			// the template or the child changes, which reconciles anew.
			st.stalled(ReasonApplyFailed, err.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		st.failing(ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}

	// A kind the cluster began to serve during this reconcile can be
	// applied (the applier found it served) before its watch started
	// (catchUp, above, did not yet): without the watch, nothing would tell
	// the CR that its child changed.
	unwatched, err := r.Children.catchUp(gvksOf(g.toApply))
	if err != nil {
		st.failing(ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}

	healths, lives, err := r.Applier.Health(ctx, rendered.Objects, res.Lives)
	if err != nil {
		st.failing(ReasonHealthCheckFailed, err.Error())
		return ctrl.Result{}, err
	}
	healths = judged(rendered, healths)
	seen.children = settledVersions(rendered, lives, g)
	st.health(g.waits, healths)
	var requeue time.Duration
	if len(unwatched) > 0 {
		// Applied, and still not watched: look again soon, not never.
		requeue = unwatchedRetry
	}
	if st.progressing() && createdAll(res, len(g.toApply)) {
		if projected, ok := rendered.StatusAsRendered(); ok {
			// Children that were created a moment ago have reported
			// nothing: their status, as the render evaluated it, comes
			// with no evaluation of its own. Their first report reconciles
			// the CR again, as does this requeue if they make none.
			st.projected = projected
			return ctrl.Result{RequeueAfter: sooner(requeue, progressInterval)}, nil
		}
	}
	observed, err := r.observe(ctx, cr, rendered, lives)
	if err != nil {
		st.failing(ReasonObserveFailed, err.Error())
		return ctrl.Result{}, err
	}
	if rendered.PodSelector != nil {
		names := make([]string, len(observed.Pods))
		for i, p := range observed.Pods {
			names[i] = p.Name
		}
		seen.podSelector, seen.pods = rendered.PodSelector, digestNames(names)
	}
	projected, err := rendered.Status(observed)
	if err != nil {
		st.stalled(ReasonTemplateError, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	st.projected = projected
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// createdAll reports whether the apply created each of the applied
// children: none of them existed when the CR was rendered.
func createdAll(res *apply.Result, applied int) bool {
	if applied == 0 || len(res.Changes) != applied {
		return false
	}
	for _, c := range res.Changes {
		if c.Action != apply.ActionCreate {
			return false
		}
	}
	return true
}

// sooner is the sooner of two requeues, 0 being none.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// unwatchedRetry is how soon a CR whose applied child is of a kind not
// watched yet is reconciled again, to watch it.
const unwatchedRetry = 5 * time.Second

// renderFailed records a render that failed: retrying cannot fix a spec
// or template error, a new generation will. Nothing is applied or pruned
// from a failed render.
func (r *Reconciler) renderFailed(cr *unstructured.Unstructured, st *status, err error) (ctrl.Result, error) {
	reason := ReasonInvalidSpec
	if errors.As(err, new(*render.TemplateError)) {
		reason = ReasonTemplateError
	}
	st.stalled(reason, err.Error())
	r.warn(cr, reason, actionRender, err.Error())
	return ctrl.Result{}, reconcile.TerminalError(err)
}

// render renders cr with kind, or takes the render kept from the CR's last
// reconcile when the CR and the template are what it was made from.
func (r *Reconciler) render(cr *unstructured.Unstructured, kind *render.Kind, seen *settled) (*render.Rendered, error) {
	key := client.ObjectKeyFromObject(cr)
	if kept := r.renders.get(key, seen); kept != nil {
		return kept, nil
	}
	defer observePhase(r.GVK, phaseRender)()
	rendered, err := kind.Render(cr)
	if err != nil {
		countRenderError(r.GVK)
		return nil, err
	}
	r.renders.put(key, seen, rendered, time.Now())
	return rendered, nil
}

// apply pushes the children, prunes what the template dropped, and records
// the outcome in st, events and metrics.
func (r *Reconciler) apply(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind, rendered *render.Rendered, objects, held []*unstructured.Unstructured, st *status, contested bool) *apply.Result {
	defer observePhase(r.GVK, phaseApply)()
	previous := st.inventory
	res := r.Applier.Apply(ctx, apply.Request{
		Owner:       kind.Owner(cr),
		Objects:     objects,
		Held:        held,
		Fields:      rendered.FieldRules(),
		Previous:    previous,
		Declared:    kind.ChildKinds,
		ChildKinds:  r.Children.kinds(),
		ReportDrift: cr.GetAnnotations()[child.AnnotationDrift] == child.DriftReport,
		// What a waiting child will be is not known: nothing is pruned
		// until every child renders.
		NoPrune: contested || len(rendered.Waiting) > 0,
	})
	var finalizers []string
	if res.Orphans {
		finalizers = append(finalizers, child.FinalizerRelease)
	}
	if rendered.DeleteInOrder {
		finalizers = append(finalizers, child.FinalizerDeleteInOrder)
	}
	if err := r.keepFinalizers(ctx, cr, finalizers...); err != nil {
		res.Failed = append(res.Failed, &apply.ChildError{Object: child.Describe(cr), Err: err})
	}
	st.inventory = res.Inventory
	if !kind.KeepsDigests() {
		// The status would be refused; a restart then reads the children.
		st.inventory = st.inventory.WithoutDigests()
	}
	st.drift(res.Drifts)
	r.record(cr, res, len(previous) == 0)
	countApply(r.GVK, client.ObjectKeyFromObject(cr), res)
	return res
}

// finalize lets a CR being deleted go: first its children go in the
// template's order if it asks (deleteInOrder), then those with policy
// Orphan are released.
func (r *Reconciler) finalize(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind) (ctrl.Result, error) {
	if controllerutil.ContainsFinalizer(cr, child.FinalizerDeleteInOrder) {
		if wait, err := r.withdraw(ctx, cr, kind); err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
	}
	if controllerutil.ContainsFinalizer(cr, child.FinalizerRelease) {
		if err := r.Applier.Release(ctx, kind.Owner(cr), r.Children.kinds()); err != nil {
			r.warn(cr, ReasonApplyFailed, actionApply, "releasing the Orphan children: "+err.Error())
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.keepFinalizers(ctx, cr)
}

// deletionPoll is how often a CR deleted in order looks at the stage it
// waits for; the children's watch usually tells it sooner.
const deletionPoll = 2 * time.Second

// defaultDeletionTimeout bounds the wait for each stage of a deletion in
// order, unless Options say otherwise.
const defaultDeletionTimeout = 5 * time.Minute

// withdraw deletes the children of a CR being deleted, stage by stage in
// the reverse of the template's order. It returns how soon to look again
// while a stage is going, and 0 once every stage is gone or the wait is
// over (the garbage collector then takes what is left); the CR's status
// says what it waits for meanwhile.
func (r *Reconciler) withdraw(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind) (time.Duration, error) {
	rendered, err := kind.Render(cr)
	if err == nil && rendered.PendingInputs {
		var inputs map[string]any
		if inputs, err = r.readInputs(ctx, rendered.Inputs); err == nil {
			err = rendered.Observe(render.Observed{Inputs: inputs})
		}
	}
	if err == nil {
		// With the live children, so that those that read others render
		// too and are ordered with them.
		_, err = r.gate(ctx, rendered)
	}
	if err != nil {
		r.warn(cr, ReasonDeletionUnordered, actionDelete, "the children cannot be rendered to order their deletion, the garbage collector takes them: "+err.Error())
		return 0, nil
	}
	waiting, err := r.Applier.Withdraw(ctx, kind.Owner(cr), rendered.DeletionStages())
	if err != nil || len(waiting) == 0 {
		return 0, err
	}
	since := time.Since(cr.GetDeletionTimestamp().Time)
	if since >= r.DeletionTimeout {
		r.warn(cr, ReasonDeletionUnordered, actionDelete, fmt.Sprintf("%s still there %s after the CR's deletion: the garbage collector takes the rest", strings.Join(waiting, ", "), r.DeletionTimeout))
		return 0, nil
	}
	st := newStatus(cr)
	msg := fmt.Sprintf("deleting the children in the template's order: waits until %s is gone (%s so far, at most %s)", strings.Join(waiting, ", "), since.Round(time.Second), r.DeletionTimeout)
	st.set(ConditionReady, metav1.ConditionFalse, ReasonDeleting, msg)
	st.set(ConditionReconciling, metav1.ConditionTrue, ReasonDeleting, msg)
	if _, err := r.writeStatus(ctx, cr, st); err != nil && !errors.As(err, new(*heldStatus)) {
		return 0, err
	}
	return deletionPoll, nil
}

// ourFinalizers are the finalizers cuerator puts on CRs.
var ourFinalizers = []string{child.FinalizerRelease, child.FinalizerDeleteInOrder}

// keepFinalizers makes want exactly the finalizers of ours on cr, by a
// server-side apply of those alone: others' finalizers stay.
func (r *Reconciler) keepFinalizers(ctx context.Context, cr *unstructured.Unstructured, want ...string) error {
	same := true
	for _, f := range ourFinalizers {
		if controllerutil.ContainsFinalizer(cr, f) != slices.Contains(want, f) {
			same = false
		}
	}
	if same {
		return nil
	}
	patch := &unstructured.Unstructured{}
	patch.SetGroupVersionKind(r.GVK)
	patch.SetNamespace(cr.GetNamespace())
	patch.SetName(cr.GetName())
	patch.SetUID(cr.GetUID()) // never a CR of that name created since
	patch.SetFinalizers(append([]string{}, want...))
	err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(patch), client.FieldOwner(child.FieldManager+"-finalizer"), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalizers %v: %w", want, err)
	}
	return nil
}

// pastTense of each write, for event notes.
var pastTense = map[apply.Action]string{
	apply.ActionCreate:    "created",
	apply.ActionConfigure: "configured",
	apply.ActionRecreate:  "re-created",
	apply.ActionDelete:    "deleted",
	apply.ActionOrphan:    "orphaned",
}

// record reports what one apply did in at most one event per kind of news:
// what changed (with the drifts it corrected), what it refused, what failed.
// The children a new CR starts with are no news: its status lists them.
func (r *Reconciler) record(cr *unstructured.Unstructured, res *apply.Result, firstApply bool) {
	var changes []string
	onlyCreates := true
	for _, c := range res.Changes {
		changes = append(changes, c.Object+" "+pastTense[c.Action])
		onlyCreates = onlyCreates && c.Action == apply.ActionCreate
	}
	var drifts []string
	for _, d := range res.Drifts {
		action := "corrected"
		if !d.Corrected {
			action = "left in place (drift policy report)"
		}
		drifts = append(drifts, d.String()+"; "+action)
	}
	switch {
	case len(drifts) > 0:
		r.warn(cr, ReasonDrifted, actionApply, strings.Join(append(drifts, changes...), "; "))
	case len(changes) > 0 && !(firstApply && onlyCreates):
		r.event(cr, corev1.EventTypeNormal, ReasonChildrenChanged, actionApply, strings.Join(changes, "; "))
	}
	if len(res.Conflicts) > 0 {
		msgs := make([]string, len(res.Conflicts))
		for i, c := range res.Conflicts {
			msgs[i] = c.String()
		}
		r.warn(cr, ReasonAdoptionRefused, actionApply, strings.Join(msgs, "; "))
	}
	if err := res.Err(); err != nil {
		r.warn(cr, ReasonApplyFailed, actionApply, err.Error())
	}
}

func (r *Reconciler) warn(cr *unstructured.Unstructured, reason, action, note string) {
	r.event(cr, corev1.EventTypeWarning, reason, action, note)
}

// event records one event, its note cut to what the events API keeps.
func (r *Reconciler) event(cr *unstructured.Unstructured, typ, reason, action, note string) {
	r.Recorder.Eventf(cr, nil, typ, reason, action, "%s", cut(note, maxEventNote))
}

// observe gathers what the template's status projection may use: the live
// children's status and the names of the pods it selects.
func (r *Reconciler) observe(ctx context.Context, cr *unstructured.Unstructured, rendered *render.Rendered, lives []*unstructured.Unstructured) (render.Observed, error) {
	obs := render.Observed{Children: observedChildren(rendered, lives)}
	if rendered.PodSelector == nil {
		return obs, nil
	}
	names, err := r.podNames(ctx, cr, rendered.PodSelector)
	if err != nil {
		return obs, fmt.Errorf("list pods: %w", err)
	}
	// In name order: a list from the cache has none, and a status that
	// reordered itself would be written again and again.
	sort.Strings(names)
	for _, name := range names {
		obs.Pods = append(obs.Pods, render.ObservedPod{Name: name})
	}
	return obs, nil
}

// writeStatus server-side applies the status subresource, so the operator
// owns exactly the status fields it sets and never touches spec. It returns
// the CR's resourceVersion after the write ("" when the CR is gone).
func (r *Reconciler) writeStatus(ctx context.Context, cr *unstructured.Unstructured, st *status) (string, error) {
	defer observePhase(r.GVK, phaseStatus)()
	desired, err := st.build()
	if err != nil {
		return "", err
	}
	current, _ := cr.Object["status"].(map[string]any)
	if !st.claim && equality.Semantic.DeepEqual(withoutReconciler(desired), withoutReconciler(current)) {
		// An unchanged status costs no request. Who wrote it goes along with
		// a write that happens anyway: a restarted process rewrites no CR.
		return cr.GetResourceVersion(), nil
	}
	if progressOnly(current, desired) {
		if wait := r.written.holdFor(client.ObjectKeyFromObject(cr), progressInterval); wait > 0 {
			return "", &heldStatus{wait: wait}
		}
	}
	patch := &unstructured.Unstructured{}
	patch.SetGroupVersionKind(r.GVK)
	patch.SetName(cr.GetName())
	patch.SetNamespace(cr.GetNamespace())
	patch.Object["status"] = desired
	err = r.Client.Status().Patch(ctx, patch, client.Apply, client.FieldOwner(child.FieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("write status: %w", err)
	}
	r.written.mark(client.ObjectKeyFromObject(cr), patch.GetResourceVersion())
	return patch.GetResourceVersion(), nil
}

// gvksOf returns the kinds of objs, each once.
func gvksOf(objs []*unstructured.Unstructured) []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	seen := map[schema.GroupVersionKind]bool{}
	for _, o := range objs {
		if gvk := o.GroupVersionKind(); !seen[gvk] {
			seen[gvk] = true
			out = append(out, gvk)
		}
	}
	return out
}

// withoutReconciler is st without status.reconciler.
func withoutReconciler(st map[string]any) map[string]any {
	if _, ok := st["reconciler"]; !ok {
		return st
	}
	out := make(map[string]any, len(st))
	for k, v := range st {
		if k != "reconciler" {
			out[k] = v
		}
	}
	return out
}
