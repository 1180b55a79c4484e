package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// driftSamples is how many outside changes one op makes and times.
const driftSamples = 30

// BenchmarkDriftLatency measures how long an outside change to a field
// cuerator manages lives: from a competing field manager's patch of a
// Deployment's replicas until the in-process widget operator has put them
// back, as seen by polling the API server every 10 ms.
func BenchmarkDriftLatency(b *testing.B) {
	widgetsOnce.Do(func() { widgetsErr = runWidgetOperator() })
	if widgetsErr != nil {
		b.Fatalf("widget operator: %v", widgetsErr)
	}
	api, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const ns, name, replicas = "bench-drift-latency", "w", 2
	if out, err := kubectlOut(testCluster.KubeconfigPath, "create", "namespace", ns); err != nil {
		b.Fatalf("create namespace: %v: %s", err, out)
	}
	b.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", ns, "--wait=false") })

	widget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.cuerator.dev/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"replicas": int64(replicas), "withConfig": false},
	}}
	if err := api.Create(ctx, widget); err != nil {
		b.Fatal(err)
	}
	if out, err := kubectlOut(testCluster.KubeconfigPath, "wait", "-n", ns, "--for=condition=Ready", "widget/"+name, "--timeout=90s"); err != nil {
		b.Fatalf("widget not Ready: %v: %s", err, out)
	}

	key := types.NamespacedName{Namespace: ns, Name: name}
	var latencies []time.Duration
	for b.Loop() {
		for i := range driftSamples {
			// Let the last correction's status write and watch echoes settle,
			// so that each sample starts from a quiet operator.
			time.Sleep(500 * time.Millisecond)
			drifted := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas+1+i%3)
			start := time.Now()
			err := api.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, client.RawPatch(types.MergePatchType, []byte(drifted)), client.FieldOwner("competitor"))
			if err != nil {
				b.Fatal(err)
			}
			latencies = append(latencies, waitReplicas(b, api, key, replicas).Sub(start))
		}
	}
	slices.Sort(latencies)
	b.ReportMetric(percentileMillis(latencies, 50), "p50-ms")
	b.ReportMetric(percentileMillis(latencies, 99), "p99-ms")
}

// waitReplicas polls the Deployment until its spec.replicas is want and
// returns when it saw it.
func waitReplicas(b *testing.B, api client.Client, key types.NamespacedName, want int32) time.Time {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d := &appsv1.Deployment{}
		if err := api.Get(context.Background(), key, d); err != nil {
			b.Fatal(err)
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas == want {
			return time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("deployment %s: replicas not back to %d within a minute", key, want)
	return time.Time{}
}

// percentileMillis returns the p-th percentile of sorted, nearest rank, in
// milliseconds.
func percentileMillis(sorted []time.Duration, p int) float64 {
	rank := (p*len(sorted) + 99) / 100
	return float64(sorted[max(rank, 1)-1].Microseconds()) / 1000
}
