package cluster_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/cuerator/cuerator/test/cluster"
)

// A watch from a resource version older than a compaction is refused as
// expired, once the API server reads etcd for it (no watch cache).
func TestCompactedWatchExpires(t *testing.T) {
	if os.Getenv(cluster.EnvTestKubeconfig) != "" {
		t.Skip("the cluster was not started by this test binary")
	}
	ctx, cs, ns := setup(t)
	if err := testCluster.RestartAPIServer(map[string]string{"watch-cache": "false"}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := testCluster.RestartAPIServer(map[string]string{"watch-cache": ""}); err != nil {
			t.Errorf("restoring the watch cache: %v", err)
		}
	}()
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A compaction keeps its own revision: the watch must want one before.
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "newer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testCluster.CompactEtcd(); err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion})
	if err == nil {
		ev, ok := <-w.ResultChan()
		w.Stop()
		if !ok || ev.Type != watch.Error {
			t.Fatalf("watch from a compacted revision: event %v, want an error", ev.Type)
		}
		err = apierrors.FromObject(ev.Object)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Code != 410 {
		t.Errorf("watch from a compacted revision: %v, want 410 Gone", err)
	}
}

// The API server comes back with the flags RestartAPIServer was given.
func TestAPIServerFlagsChange(t *testing.T) {
	if os.Getenv(cluster.EnvTestKubeconfig) != "" {
		t.Skip("the cluster was not started by this test binary")
	}
	if err := testCluster.RestartAPIServer(map[string]string{"max-requests-inflight": "7"}); err != nil {
		t.Fatal(err)
	}
	cmdline := func() string {
		pid := testCluster.PIDs()["kube-apiserver"]
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "\x00", " ")
	}
	if got := cmdline(); !strings.Contains(got, "--max-requests-inflight=7") {
		t.Errorf("kube-apiserver runs with %s, want --max-requests-inflight=7", got)
	}
	if err := testCluster.RestartAPIServer(map[string]string{"max-requests-inflight": ""}); err != nil {
		t.Fatal(err)
	}
	if got := cmdline(); strings.Contains(got, "max-requests-inflight") {
		t.Errorf("kube-apiserver runs with %s after the flag was taken back", got)
	}
}
