package typedwebapp

import (
	"context"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// ConditionReady is True once the Deployment is available.
const ConditionReady = "Ready"

// Reconciler reconciles WebApps.
type Reconciler struct {
	client.Client
	Scheme *runtime.Scheme
}

// SetupWithManager registers the controller: WebApps, and the children it
// owns, with at most maxConcurrent reconciles at a time.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrent int) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Its own status writes bump no generation: reconciling on them
		// would only find nothing to do.
		For(&WebApp{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&networkingv1.Ingress{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrent}).
		Complete(r)
}

// Reconcile creates or updates the WebApp's Deployment, Service and Ingress,
// then reports whether the Deployment is available.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &WebApp{}
	if err := r.Get(ctx, req.NamespacedName, app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes the children
	}

	deployment, wantDeployment := &appsv1.Deployment{ObjectMeta: objectKey(app)}, Deployment(app)
	service, wantService := &corev1.Service{ObjectMeta: objectKey(app)}, Service(app)
	ingress, wantIngress := &networkingv1.Ingress{ObjectMeta: objectKey(app)}, Ingress(app)
	children := []struct {
		live, want client.Object
		// setSpec copies the fields this controller sets from want to live.
		setSpec func()
	}{
		{deployment, wantDeployment, func() {
			// The API server fills in defaults (restartPolicy,
			// imagePullPolicy, ...): only a field this controller sets
			// counts as a difference.
			if !equality.Semantic.DeepDerivative(wantDeployment.Spec, deployment.Spec) {
				deployment.Spec = wantDeployment.Spec
			}
		}},
		{service, wantService, func() {
			// Not the whole spec: the cluster IP the API server allocated
			// stays.
			service.Spec.Type = wantService.Spec.Type
			service.Spec.Selector = wantService.Spec.Selector
			service.Spec.Ports = wantService.Spec.Ports
		}},
		{ingress, wantIngress, func() {
			ingress.Spec.Rules = wantIngress.Spec.Rules
			ingress.Spec.TLS = wantIngress.Spec.TLS
		}},
	}
	for _, c := range children {
		if err := r.createOrUpdate(ctx, app, c.live, c.want.GetLabels(), c.setSpec); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.updateStatus(ctx, app, deployment)
}

// createOrUpdate gets obj by name and creates it, or updates it when setSpec,
// the labels or the owner reference change it.
func (r *Reconciler) createOrUpdate(ctx context.Context, app *WebApp, obj client.Object, labels map[string]string, setSpec func()) error {
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, obj, func() error {
		setSpec()
		merged := maps.Clone(obj.GetLabels())
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, labels)
		obj.SetLabels(merged)
		return controllerutil.SetControllerReference(app, obj, r.Scheme)
	})
	if err != nil {
		return fmt.Errorf("create or update %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// updateStatus writes observedGeneration, the URL, ready replicas and the
// Ready condition, when any of them changed.
func (r *Reconciler) updateStatus(ctx context.Context, app *WebApp, deployment *appsv1.Deployment) error {
	status := app.Status
	status.Conditions = slices.Clone(app.Status.Conditions)
	status.ObservedGeneration = app.Generation
	status.URL = URL(app)
	status.ReadyReplicas = deployment.Status.ReadyReplicas
	meta.SetStatusCondition(&status.Conditions, readyCondition(app, DeploymentAvailable(deployment)))
	if equality.Semantic.DeepEqual(status, app.Status) {
		return nil
	}
	app.Status = status
	if err := r.Status().Update(ctx, app); err != nil {
		return fmt.Errorf("update status of %s: %w", app.Name, err)
	}
	return nil
}

// DeploymentAvailable reports whether the Deployment controller has seen the
// current spec and every replica is updated and available.
func DeploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation || d.Spec.Replicas == nil {
		return false
	}
	want := *d.Spec.Replicas
	if d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readyCondition(app *WebApp, available bool) metav1.Condition {
	c := metav1.Condition{
		Type:               ConditionReady,
		Status:             metav1.ConditionTrue,
		ObservedGeneration: app.Generation,
		Reason:             "Available",
		Message:            "the Deployment is available",
	}
	if !available {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "Progressing", "waiting for the Deployment to become available"
	}
	return c
}
