package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kubectl scale on a WebApp goes through the scale subresource of its CRD
// to spec.replicas, and the operator carries it to the Deployment; the
// subresource reports the Deployment's replicas and a selector of the pods.
func TestKubectlScaleWebApp(t *testing.T) {
	ns := namespace(t, "webapp-scale")
	kubectl(t, "apply", "-n", ns, "-f", webAppSample)
	const cr = "webapp/my-webapp"
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")

	kubectl(t, "scale", "-n", ns, cr, "--replicas=4")
	waitForReplicas(t, ns, 4)
	if got := kubectl(t, "get", "-n", ns, cr, "-o", "jsonpath={.spec.replicas}"); got != "4" {
		t.Errorf("spec.replicas is %s after kubectl scale", got)
	}
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")

	// What kubectl scale and autoscalers read back.
	eventually(t, 60*time.Second, "the scale subresource reports 4 replicas", func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "get", "-n", ns, cr, "--subresource=scale", "-o", "jsonpath={.spec.replicas} {.status.replicas}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if out != "4 4" {
			return fmt.Errorf("scale spec.replicas status.replicas = %s", out)
		}
		return nil
	})
	selector := kubectl(t, "get", "-n", ns, cr, "--subresource=scale", "-o", "jsonpath={.status.selector}")
	pods := strings.Fields(kubectl(t, "get", "pods", "-n", ns, "-l", selector, "-o", "name"))
	if len(pods) != 4 {
		t.Errorf("the scale subresource's selector %q selects %d pods, want the 4 of the Deployment: %v", selector, len(pods), pods)
	}
}

// A HorizontalPodAutoscaler (the real controller-manager's) scales a
// WebApp through the same subresource. The cluster has no metrics server:
// the autoscaler still enforces its bounds, so minReplicas above the
// WebApp's replicas scales it up.
func TestHorizontalPodAutoscalerScalesWebApp(t *testing.T) {
	ns := namespace(t, "webapp-hpa")
	kubectl(t, "apply", "-n", ns, "-f", webAppSample) // replicas: 3
	const cr = "webapp/my-webapp"
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")

	kubectlIn(t, `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: my-webapp
spec:
  scaleTargetRef:
    apiVersion: apps.example.com/v1alpha1
    kind: WebApp
    name: my-webapp
  minReplicas: 5
  maxReplicas: 8
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 80
`, "apply", "-n", ns, "-f", "-")
	waitForReplicas(t, ns, 5)
	if got := kubectl(t, "get", "-n", ns, cr, "-o", "jsonpath={.spec.replicas}"); got != "5" {
		t.Errorf("spec.replicas is %s, want the autoscaler's 5", got)
	}
	eventually(t, 90*time.Second, "the autoscaler reads 5 current replicas", func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "get", "-n", ns, "hpa/my-webapp", "-o", "jsonpath={.status.currentReplicas}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if out != "5" {
			return fmt.Errorf("hpa status.currentReplicas = %q", out)
		}
		return nil
	})
}

// kubectl scale on a Memcached sets spec.size.
func TestKubectlScaleMemcached(t *testing.T) {
	ns := namespace(t, "memcached-scale")
	kubectl(t, "apply", "-n", ns, "-f", "../../examples/memcached-sample.yaml")
	const cr = "memcached/memcached-sample"
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	kubectl(t, "scale", "-n", ns, cr, "--replicas=2")
	eventually(t, 60*time.Second, "the Deployment scaled to 2", func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "get", "-n", ns, "deployment/memcached-sample", "-o", "jsonpath={.spec.replicas}")
		if err != nil || out != "2" {
			return fmt.Errorf("Deployment spec.replicas %q: %v", out, err)
		}
		return nil
	})
	if got := kubectl(t, "get", "-n", ns, cr, "-o", "jsonpath={.spec.size}"); got != "2" {
		t.Errorf("spec.size is %s after kubectl scale", got)
	}
	// Size is bounded by the kind's schema, and so is scaling.
	out := kubectlFails(t, "", "scale", "-n", ns, cr, "--replicas=11")
	if !strings.Contains(out, "spec.size") {
		t.Errorf("kubectl scale beyond the bound is refused without naming spec.size:\n%s", out)
	}
}

// waitForReplicas waits until the WebApp my-webapp's Deployment asks for
// and has n ready replicas.
func waitForReplicas(t *testing.T, ns string, n int) {
	t.Helper()
	eventually(t, 120*time.Second, fmt.Sprintf("the Deployment scaled to %d", n), func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "get", "-n", ns, "deployment/my-webapp", "-o", "jsonpath={.spec.replicas} {.status.readyReplicas}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if want := strconv.Itoa(n) + " " + strconv.Itoa(n); out != want {
			return fmt.Errorf("Deployment spec.replicas, status.readyReplicas = %s", out)
		}
		return nil
	})
}
