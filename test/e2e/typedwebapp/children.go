package typedwebapp

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// portName names the container port; the Service maps it to a number and
// the Ingress refers to it by name.
const portName = "http"

// objectKey is the name and namespace of every child: the WebApp's.
func objectKey(app *WebApp) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: app.Name, Namespace: app.Namespace}
}

// selectorLabels select the WebApp's pods; a Deployment's selector is
// immutable, so they never change.
func selectorLabels(app *WebApp) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "webapp",
		"app.kubernetes.io/instance": app.Name,
	}
}

// podLabels are the pods' labels: those of schemas/common's #Labels.
func podLabels(app *WebApp) map[string]string {
	l := selectorLabels(app)
	l["app.kubernetes.io/managed-by"] = "cuerator"
	l["app.kubernetes.io/part-of"] = app.Name
	if partOf := app.Labels["app.kubernetes.io/part-of"]; partOf != "" {
		l["app.kubernetes.io/part-of"] = partOf
	}
	return l
}

// childMeta is a child's metadata. It carries the owner labels that
// cuerator adds to every child, so that both operators write the same
// objects.
func childMeta(app *WebApp) metav1.ObjectMeta {
	m := objectKey(app)
	m.Labels = podLabels(app)
	m.Labels["cuerator.dev/owner-kind"] = "webapp." + GroupVersion.Group
	m.Labels["cuerator.dev/owner-name"] = app.Name
	return m
}

// Deployment is the WebApp's Deployment, as schemas/webapp/deployment.yaml
// and webapp.cue build it.
func Deployment(app *WebApp) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: childMeta(app),
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To(app.Spec.Replicas),
			RevisionHistoryLimit: ptr.To[int32](5),
			Selector:             &metav1.LabelSelector{MatchLabels: selectorLabels(app)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(app)},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:           "web",
						Image:          app.Spec.Image,
						Ports:          []corev1.ContainerPort{{Name: portName, ContainerPort: app.Spec.Port, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: tcpProbe(0, 5),
						LivenessProbe:  tcpProbe(10, 20),
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("50m"),
							corev1.ResourceMemory: resource.MustParse("64Mi"),
						}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							ReadOnlyRootFilesystem:   ptr.To(false),
							RunAsNonRoot:             ptr.To(true),
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
				},
			},
		},
	}
}

// tcpProbe checks the http port. The thresholds and timeout are the API
// server's defaults, spelled out so that comparing with the live object
// finds no difference.
func tcpProbe(initialDelaySeconds, periodSeconds int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(portName)}},
		InitialDelaySeconds: initialDelaySeconds,
		PeriodSeconds:       periodSeconds,
		TimeoutSeconds:      1,
		SuccessThreshold:    1,
		FailureThreshold:    3,
	}
}

// Service is the WebApp's ClusterIP Service: port 80 to the container port.
func Service(app *WebApp) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: childMeta(app),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(app),
			Ports: []corev1.ServicePort{{
				Name:       portName,
				Port:       80,
				TargetPort: intstr.FromInt32(app.Spec.Port),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}

// Ingress serves the WebApp's domain from its Service.
func Ingress(app *WebApp) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: childMeta(app),
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{
				Host: app.Spec.Domain,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: ptr.To(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: app.Name,
							Port: networkingv1.ServiceBackendPort{Name: portName},
						}},
					}},
				}},
			}},
		},
	}
	if app.Spec.TLS != nil {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{app.Spec.Domain}, SecretName: app.Spec.TLS.SecretName}}
	}
	return ing
}

// URL is where the WebApp is served.
func URL(app *WebApp) string {
	if app.Spec.TLS != nil {
		return "https://" + app.Spec.Domain
	}
	return "http://" + app.Spec.Domain
}
