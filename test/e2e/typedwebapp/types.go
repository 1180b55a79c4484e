// Package typedwebapp is the WebApp operator written by hand, the way the
// Operator SDK tutorial writes its Memcached controller: Go types for the
// custom resource, children built as typed Kubernetes objects, and a
// controller-runtime reconciler that creates them or updates them when they
// differ. The convergence benchmark runs it next to cuerator, so it builds
// the same children, with the same names, labels, ports and owner
// references, as schemas/webapp does for the same spec. It leaves out the
// ServiceMonitor of spec.monitoring.enabled, which the benchmark does not
// turn on.
package typedwebapp

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is served by the WebApp CRD with its group renamed, so that
// the cuerator operator, which reconciles apps.example.com, leaves these
// WebApps to this controller.
var GroupVersion = schema.GroupVersion{Group: "typed.bench.cuerator.dev", Version: "v1alpha1"}

var (
	schemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds WebApp and WebAppList to a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func init() { schemeBuilder.Register(&WebApp{}, &WebAppList{}) }

// WebAppSpec is the desired state of a web application (schemas/webapp/api).
type WebAppSpec struct {
	Replicas int32  `json:"replicas,omitempty"`
	Image    string `json:"image"`
	Port     int32  `json:"port,omitempty"`
	Domain   string `json:"domain"`
	TLS      *TLS   `json:"tls,omitempty"`
}

// TLS names the Secret with the domain's certificate.
type TLS struct {
	SecretName string `json:"secretName"`
}

// WebAppStatus is what the controller reports.
type WebAppStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	URL                string             `json:"url,omitempty"`
	ReadyReplicas      int32              `json:"readyReplicas,omitempty"`
}

// WebApp is the custom resource.
type WebApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebAppSpec   `json:"spec,omitempty"`
	Status WebAppStatus `json:"status,omitempty"`
}

// WebAppList is a list of WebApps.
type WebAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebApp `json:"items"`
}

// The deep copies below are what controller-gen would generate.

// DeepCopyInto copies in into out.
func (in *WebApp) DeepCopyInto(out *WebApp) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if in.Spec.TLS != nil {
		tls := *in.Spec.TLS
		out.Spec.TLS = &tls
	}
	if in.Status.Conditions != nil {
		out.Status.Conditions = make([]metav1.Condition, len(in.Status.Conditions))
		for i := range in.Status.Conditions {
			in.Status.Conditions[i].DeepCopyInto(&out.Status.Conditions[i])
		}
	}
}

// DeepCopy returns a deep copy of in.
func (in *WebApp) DeepCopy() *WebApp {
	if in == nil {
		return nil
	}
	out := new(WebApp)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *WebApp) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopyInto copies in into out.
func (in *WebAppList) DeepCopyInto(out *WebAppList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]WebApp, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (in *WebAppList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := new(WebAppList)
	in.DeepCopyInto(out)
	return out
}
