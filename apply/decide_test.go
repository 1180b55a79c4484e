package apply

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/child"
)

var widgetOwner = child.Owner{
	GVK:       schema.GroupVersionKind{Group: "test.cuerator.dev", Version: "v1", Kind: "Widget"},
	Namespace: "ns", Name: "w", UID: "uid-w",
}

// obj builds a child; opts add labels, annotations and ownerReferences.
func obj(apiVersion, kind, name string, opts ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetNamespace("ns")
	o.SetName(name)
	for _, f := range opts {
		f(o)
	}
	return o
}

func stamped(o *unstructured.Unstructured) { child.Stamp(o, widgetOwner) }

func labelsOnly(o *unstructured.Unstructured) { o.SetLabels(widgetOwner.Labels()) }

// keptByCuerator is a child cuerator wrote and kept without a reference:
// its labels and cuerator among its field managers.
func keptByCuerator(o *unstructured.Unstructured) {
	labelsOnly(o)
	writtenAs("cuerator")(o)
}

func writtenAs(manager string) func(*unstructured.Unstructured) {
	return func(o *unstructured.Unstructured) {
		o.SetManagedFields(append(o.GetManagedFields(), metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply}))
	}
}

func annotated(k, v string) func(*unstructured.Unstructured) {
	return func(o *unstructured.Unstructured) {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[k] = v
		o.SetAnnotations(a)
	}
}

func controlledBy(uid string) func(*unstructured.Unstructured) {
	return func(o *unstructured.Unstructured) {
		yes := true
		o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "x/v1", Kind: "Other", Name: "o", UID: types.UID(uid), Controller: &yes}})
	}
}

func TestDecide(t *testing.T) {
	cm := func(opts ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
		return obj("v1", "ConfigMap", "c", opts...)
	}
	for _, tc := range []struct {
		name          string
		desired, live *unstructured.Unstructured
		want          Step
	}{
		{"absent", cm(stamped), nil, StepCreate},
		{"absent create-only", cm(stamped, annotated(child.AnnotationApply, child.ApplyCreateOnly)), nil, StepCreate},
		{"ours by reference", cm(stamped), cm(stamped), StepApply},
		{"ours, kept without reference", cm(stamped), cm(keptByCuerator), StepApply},
		{"owner labels alone prove nothing", cm(stamped), cm(labelsOnly, writtenAs("kubectl-edit")), StepRefuse},
		{"owner labels, handed over", cm(stamped), cm(labelsOnly, annotated(child.AnnotationAdopt, "true")), StepApply},
		{"ours, create-only", cm(stamped, annotated(child.AnnotationApply, child.ApplyCreateOnly)), cm(stamped), StepKeep},
		{"someone else's", cm(stamped), cm(), StepRefuse},
		{"another controller, our labels", cm(stamped), cm(labelsOnly, controlledBy("uid-other")), StepRefuse},
		{"someone else's, handed over", cm(stamped), cm(annotated(child.AnnotationAdopt, "true")), StepApply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.desired, tc.live, widgetOwner); got != tc.want {
				t.Errorf("Decide = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDecidePrune(t *testing.T) {
	for _, tc := range []struct {
		name string
		live *unstructured.Unstructured
		want PruneStep
	}{
		{"ours", obj("v1", "ConfigMap", "c", stamped), PruneRemove},
		{"ours, Retain", obj("v1", "ConfigMap", "c", keptByCuerator, annotated(child.AnnotationPrune, "Retain")), PruneKeep},
		{"ours, Orphan", obj("v1", "ConfigMap", "c", keptByCuerator, annotated(child.AnnotationPrune, "Orphan")), PruneRelease},
		{"owner labels alone are not deleted", obj("v1", "ConfigMap", "c", labelsOnly), PruneSkip},
		{"ours, explicit Delete", obj("v1", "ConfigMap", "c", stamped, annotated(child.AnnotationPrune, "Delete")), PruneRemove},
		{"claims are retained by default", obj("v1", "PersistentVolumeClaim", "d", keptByCuerator), PruneKeep},
		{"a claim told to go", obj("v1", "PersistentVolumeClaim", "d", keptByCuerator, annotated(child.AnnotationPrune, "Delete")), PruneRemove},
		{"someone else's", obj("v1", "ConfigMap", "c"), PruneSkip},
		{"another controller's", obj("v1", "ConfigMap", "c", labelsOnly, controlledBy("uid-other")), PruneSkip},
		{"a Namespace is never deleted", obj("v1", "Namespace", "n", stamped), PruneSkip},
		{"a CRD is never deleted", obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "x", stamped), PruneSkip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DecidePrune(tc.live, widgetOwner); got != tc.want {
				t.Errorf("DecidePrune = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRecreateSelector(t *testing.T) {
	recreate := annotated(child.AnnotationRecreate, "true")
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		want map[string]string
	}{
		{"asks", obj("apps/v1", "Deployment", "d", recreate), map[string]string{child.AnnotationRecreate: "true"}},
		{"does not ask", obj("apps/v1", "Deployment", "d"), nil},
		{"a StatefulSet never is", obj("apps/v1", "StatefulSet", "s", recreate), nil},
		{"a claim never is", obj("v1", "PersistentVolumeClaim", "p", recreate), nil},
		{"a Namespace never is", obj("v1", "Namespace", "n", recreate), nil},
		{"a CRD never is", obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "x.example.com", recreate), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := recreateSelector(tc.obj); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("recreateSelector = %v, want %v", got, tc.want)
			}
		})
	}
}

// A user's Retain or Orphan on the live child takes the ownerReference off
// what is applied, so that the child outlives its CR.
func TestDesiredFollowsThePolicyOnTheLiveChild(t *testing.T) {
	desired := obj("apps/v1", "Deployment", "d", stamped)
	for _, tc := range []struct {
		name      string
		live      *unstructured.Unstructured
		reference bool
	}{
		{"absent", nil, true},
		{"live, no policy", obj("apps/v1", "Deployment", "d", stamped), true},
		{"live, Delete", obj("apps/v1", "Deployment", "d", stamped, annotated(child.AnnotationPrune, "Delete")), true},
		{"live, Retain", obj("apps/v1", "Deployment", "d", stamped, annotated(child.AnnotationPrune, "Retain")), false},
		{"live, Orphan", obj("apps/v1", "Deployment", "d", stamped, annotated(child.AnnotationPrune, "Orphan")), false},
		{"live, nonsense", obj("apps/v1", "Deployment", "d", stamped, annotated(child.AnnotationPrune, "Keep")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Desired(desired, tc.live, child.FieldRules{})
			if has := len(got.GetOwnerReferences()) > 0; has != tc.reference {
				t.Errorf("ownerReference kept = %v, want %v", has, tc.reference)
			}
			if len(desired.GetOwnerReferences()) == 0 {
				t.Fatal("Desired changed its input")
			}
		})
	}
}

// An inventory is status, which anyone who may write status can change:
// only entries of a declared kind, in the owner's namespace, are acted on.
func TestMayHaveMade(t *testing.T) {
	req := Request{Owner: widgetOwner, Declared: []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "Deployment"}, {Version: "v1", Kind: "ConfigMap"},
	}}
	inv := child.Inventory{
		{ID: "ns_w_apps_Deployment", Version: "v1"},
		{ID: "ns_w_apps_Deployment", Version: "v1beta1"}, // another version of a declared kind
		{ID: "ns_c__ConfigMap", Version: "v1"},
		{ID: "other_c__ConfigMap", Version: "v1"},      // another namespace
		{ID: "ns_s__Secret", Version: "v1"},            // a kind the template does not declare
		{ID: "_kube-system__Namespace", Version: "v1"}, // cluster-scoped, undeclared
		{ID: "garbage", Version: "v1"},
	}
	got := mayHaveMade(req, inv)
	want := child.Inventory{inv[0], inv[1], inv[2]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mayHaveMade = %v, want %v", got, want)
	}
}

// Fields left to others are applied when the child is created and never
// after; fields whose drift is ignored carry their live value.
func TestDesiredLeavesFieldsToOthers(t *testing.T) {
	rules := child.FieldRules{Leave: []string{"spec.replicas"}, IgnoreDrift: []string{"spec.paused"}}
	desired := obj("apps/v1", "Deployment", "d", stamped)
	_ = unstructured.SetNestedField(desired.Object, int64(3), "spec", "replicas")
	_ = unstructured.SetNestedField(desired.Object, false, "spec", "paused")
	_ = unstructured.SetNestedField(desired.Object, "x", "spec", "template", "metadata", "name")

	if got := Desired(desired, nil, rules); !reflect.DeepEqual(got, desired) {
		t.Errorf("a child to create is not applied whole: %v", got.Object["spec"])
	}

	live := obj("apps/v1", "Deployment", "d", stamped)
	_ = unstructured.SetNestedField(live.Object, int64(7), "spec", "replicas")
	_ = unstructured.SetNestedField(live.Object, true, "spec", "paused")
	got := Desired(desired, live, rules)
	if _, has, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); has {
		t.Error("spec.replicas, left to others, is applied to a live child")
	}
	if paused, _, _ := unstructured.NestedBool(got.Object, "spec", "paused"); !paused {
		t.Error("spec.paused, whose drift is ignored, is not applied with its live value")
	}
	if name, _, _ := unstructured.NestedString(got.Object, "spec", "template", "metadata", "name"); name != "x" {
		t.Error("a field with no rule is not applied as rendered")
	}
	if r, _, _ := unstructured.NestedInt64(desired.Object, "spec", "replicas"); r != 3 {
		t.Fatal("Desired changed its input")
	}
}
