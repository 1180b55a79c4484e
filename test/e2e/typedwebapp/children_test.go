package typedwebapp

import (
	"encoding/json"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// The benchmark compares operators that write the same objects: the typed
// children must be what the cuerator template renders for the same spec,
// but for the owner's group.
func TestChildrenMatchTemplate(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	kind := lib.Kind(schema.GroupVersionKind{Group: "apps.example.com", Version: "v1alpha1", Kind: "WebApp"})
	if kind == nil {
		t.Fatal("the template library has no apps.example.com WebApp")
	}
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]WebAppSpec{
		"plain": {Replicas: 2, Image: "nginx:alpine", Port: 8080, Domain: "shop.example.com"},
		"tls":   {Replicas: 1, Image: "nginx:alpine", Port: 80, Domain: "shop.example.com", TLS: &TLS{SecretName: "shop-tls"}},
	} {
		t.Run(name, func(t *testing.T) {
			app := &WebApp{
				TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "WebApp"},
				ObjectMeta: metav1.ObjectMeta{
					Name: "shop", Namespace: "store", UID: "0b6c1f1e-4f7a-4e43-9c1b-6f1f0d1c2a11",
					Labels: map[string]string{"app.kubernetes.io/part-of": "store"},
				},
				Spec: spec,
			}
			rendered, err := kind.Render(templateCR(t, app))
			if err != nil {
				t.Fatal(err)
			}
			built := map[string]client.Object{"Deployment": Deployment(app), "Service": Service(app), "Ingress": Ingress(app)}
			if len(rendered.Objects) != len(built) {
				t.Fatalf("the template renders %d children, want %d", len(rendered.Objects), len(built))
			}
			for _, obj := range rendered.Objects {
				typed, ok := built[obj.GetKind()]
				if !ok {
					t.Fatalf("the template renders a %s", obj.GetKind())
				}
				if err := controllerutil.SetControllerReference(app, typed, scheme); err != nil {
					t.Fatal(err)
				}
				want := asTyped(t, obj, typed)
				if !equality.Semantic.DeepEqual(want, typed) {
					t.Errorf("%s differs from the template's\ntyped:    %s\ntemplate: %s", obj.GetKind(), toJSON(t, typed), toJSON(t, want))
				}
			}
		})
	}
}

// templateCR is app as an apps.example.com WebApp, the group the template
// serves.
func templateCR(t *testing.T, app *WebApp) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(app)
	if err != nil {
		t.Fatal(err)
	}
	cr := &unstructured.Unstructured{Object: obj}
	cr.SetAPIVersion("apps.example.com/v1alpha1")
	delete(cr.Object, "status")
	unstructured.RemoveNestedField(cr.Object, "metadata", "creationTimestamp")
	return cr
}

// asTyped converts a rendered child into like's type, moved to the typed
// group, with the probe defaults the API server would add.
func asTyped(t *testing.T, obj *unstructured.Unstructured, like client.Object) client.Object {
	t.Helper()
	obj = obj.DeepCopy()
	labels := obj.GetLabels()
	labels["cuerator.dev/owner-kind"] = "webapp." + GroupVersion.Group
	obj.SetLabels(labels)
	refs := obj.GetOwnerReferences()
	for i := range refs {
		refs[i].APIVersion = GroupVersion.String()
	}
	obj.SetOwnerReferences(refs)
	out := reflect.New(reflect.TypeOf(like).Elem()).Interface().(client.Object)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		t.Fatal(err)
	}
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{}) // the typed builders set no TypeMeta
	if d, ok := out.(*appsv1.Deployment); ok {
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				p.TimeoutSeconds, p.SuccessThreshold, p.FailureThreshold = 1, 1, 3
			}
		}
	}
	return out
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
