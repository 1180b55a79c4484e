package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/cuerator/cuerator/test/cluster"
)

var testCluster *cluster.Cluster

func TestMain(m *testing.M) {
	began := time.Now()
	var pids map[string]int
	code := cluster.Main(m, func(c *cluster.Cluster) (func(), error) {
		fmt.Printf("cluster ready in %s\n", time.Since(began).Round(time.Millisecond))
		testCluster = c
		pids = c.PIDs()
		return nil, nil
	})
	if testCluster != nil {
		pids = testCluster.PIDs() // the API server's changes when a test restarts it
	}
	// Stop must leave no process behind.
	if testCluster != nil && os.Getenv(cluster.EnvTestKubeconfig) == "" && len(pids) != 5 {
		fmt.Fprintf(os.Stderr, "FAIL: want pids of 5 components, got %v\n", pids)
		code = 1
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			fmt.Fprintf(os.Stderr, "FAIL: %s (pid %d) still runs after Stop\n", name, pid)
			code = 1
		}
	}
	os.Exit(code)
}

func TestKubectlVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "version", "--output=json", "--kubeconfig="+testCluster.KubeconfigPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, stderr.String())
	}
	var v struct {
		ServerVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("parsing kubectl output: %v\n%s", err, out)
	}
	if v.ServerVersion.GitVersion != "v1.37.2" {
		t.Errorf("server version = %q, want v1.37.2", v.ServerVersion.GitVersion)
	}
}

func TestDeploymentAndGarbageCollection(t *testing.T) {
	ctx, cs, ns := setup(t)
	labels := map[string]string{"app": "memcached"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	poll(ctx, t, "Deployment Available with 3 replicas", func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, deploy.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != 3 {
			return fmt.Errorf("%d available", d.Status.AvailableReplicas)
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Available: %+v", d.Status.Conditions)
	})
	poll(ctx, t, "3 Running pods", func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=memcached"})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == cluster.NodeName {
				running++
			}
		}
		if running != 3 {
			return fmt.Errorf("%d of %d pods Running on %s", running, len(pods.Items), cluster.NodeName)
		}
		return nil
	})

	if err := cs.AppsV1().Deployments(ns).Delete(ctx, deploy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "garbage collector to delete the ReplicaSet and its pods", func() error {
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=memcached"})
		if err != nil {
			return err
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=memcached"})
		if err != nil {
			return err
		}
		if n := len(rs.Items) + len(pods.Items); n > 0 {
			return fmt.Errorf("%d ReplicaSets and %d pods left", len(rs.Items), len(pods.Items))
		}
		return nil
	})
}

// The API server comes back after a crash with its data, and clients and
// the other components reconnect with the credentials they hold.
func TestAPIServerKilledAndStarted(t *testing.T) {
	if os.Getenv(cluster.EnvTestKubeconfig) != "" {
		t.Skip("the cluster was not started by this test binary")
	}
	ctx, cs, ns := setup(t)
	before := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-crash"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, before, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testCluster.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, before.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("a request succeeded while the API server was killed")
	}
	if err := testCluster.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, before.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading back after the restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Errorf("data after the restart: %v", got.Data)
	}
	// The controller-manager, scheduler and kwok reconnected: a new
	// Deployment becomes Available.
	labels := map[string]string{"app": "after-crash"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after-crash"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the Deployment created after the restart to be Available", func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, deploy.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != 1 {
			return fmt.Errorf("%d available", d.Status.AvailableReplicas)
		}
		return nil
	})
	out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig="+testCluster.KubeconfigPath, "get", "configmap", before.Name, "-n", ns, "-o", "name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "configmap/"+before.Name {
		t.Errorf("kubectl with the kubeconfig written at start: %v: %s", err, out)
	}
}

func TestStatefulSetVolume(t *testing.T) {
	ctx, cs, ns := setup(t)
	labels := map[string]string{"app": "web"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     []corev1.ServicePort{{Name: "memcache", Port: 11211}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: svc.Name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template:    podTemplate(labels),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
					},
				},
			}},
		},
	}
	sts.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	poll(ctx, t, "PVC data-web-0 Bound", func() error {
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-web-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pvc.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("phase %q", pvc.Status.Phase)
		}
		return nil
	})
	poll(ctx, t, "pod web-0 Running", func() error {
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %q", pod.Status.Phase)
		}
		return nil
	})
}

// TestResourceUsage reports what the cluster costs; it checks nothing.
func TestResourceUsage(t *testing.T) {
	pids := testCluster.PIDs()
	if len(pids) == 0 {
		t.Skip("cluster not started by this test binary")
	}
	var total int
	for name, pid := range pids {
		rss, err := rssKiB(pid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		total += rss
		t.Logf("%-24s pid %-7d RSS %4d MiB", name, pid, rss/1024)
	}
	t.Logf("%-24s             RSS %4d MiB", "total", total/1024)
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kib int
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kib); err == nil {
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// setup returns a client and a fresh namespace that is deleted after the test.
func setup(t *testing.T) (context.Context, kubernetes.Interface, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := kubernetes.NewForConfig(testCluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cluster-test-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A fresh context: the test's may have expired.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace: %v", err)
		}
	})
	return ctx, cs, ns.Name
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "memcached", Image: "memcached:1.6"}},
		},
	}
}

// poll waits until check returns nil, failing the test with check's last
// error when ctx ends.
func poll(ctx context.Context, t *testing.T, what string, check func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %v)", what, err, last)
	}
}
