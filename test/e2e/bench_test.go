package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcluster "sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
)

// BenchmarkNoopApply compares, on the same cluster in one run, what it costs
// to confirm that N unchanged CRs' children are as desired:
//   - cuerator: the engine's Apply, reading live objects from the informer
//     cache and comparing the fields it manages;
//   - dry-run-every-object: fluxcd/pkg/ssa's ApplyAllStaged, which GETs and
//     server-side dry-runs every child.
//
// Run: go test ./test/e2e -run '^$' -bench NoopApply -benchtime 20x
func BenchmarkNoopApply(b *testing.B) {
	const crs = 10 // 4 children each
	lib, err := installWidgetCRD()
	if err != nil {
		b.Fatal(err)
	}
	kind := lib.Kinds()[0]
	ns := "bench-noop"
	if out, err := kubectlOut(testCluster.KubeconfigPath, "create", "namespace", ns); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	b.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", ns, "--wait=false") })

	cfg := countRequests(testCluster.Config)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	cl, err := crcluster.New(cfg, func(o *crcluster.Options) {
		o.Client.Cache = &client.CacheOptions{Unstructured: true}
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = cl.Start(ctx) }()
	cl.GetCache().WaitForCacheSync(ctx)

	// Real CRs, so the children's ownerReferences point at live owners.
	var reqs []apply.Request
	for i := range crs {
		cr := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "test.cuerator.dev/v1", "kind": "Widget",
			"metadata": map[string]any{"name": fmt.Sprintf("w%d", i), "namespace": ns},
			"spec":     map[string]any{"withConfig": true, "retained": true, "volume": true},
		}}
		if err := cl.GetClient().Create(ctx, cr); err != nil {
			b.Fatal(err)
		}
		rendered, err := kind.Render(cr)
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, apply.Request{Owner: kind.Owner(cr), Objects: rendered.Objects})
	}
	children := 0
	for _, r := range reqs {
		children += len(r.Objects)
	}

	applier := apply.NewApplier(cl.GetClient(), cl.GetAPIReader())
	// The first apply creates (the Retained children with their owner's
	// reference, until recorded) and warms the engine; the second, with
	// the inventory recorded as the operator would, takes that reference
	// off. Every apply after that is a no-op.
	for range 2 {
		for i := range reqs {
			res := applier.Apply(ctx, reqs[i])
			if err := res.Err(); err != nil {
				b.Fatal(err)
			}
			reqs[i].Previous = res.Inventory
		}
	}
	direct, err := client.New(rest.CopyConfig(cfg), client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	manager := ssa.NewResourceManager(direct, nil, ssa.Owner{Field: child.FieldManager, Group: "cuerator.dev"})
	// Wait until the cache holds every child, as it does in a running operator.
	time.Sleep(2 * time.Second)

	report := func(b *testing.B, start int) {
		perOp := float64(len(recentRequests.since(start, ns))) / float64(b.N)
		b.ReportMetric(perOp, "requests/op")
		b.ReportMetric(perOp/float64(children), "requests/child")
	}
	b.Run(fmt.Sprintf("cuerator/children=%d", children), func(b *testing.B) {
		start := recentRequests.mark()
		for b.Loop() {
			for _, r := range reqs {
				res := applier.Apply(ctx, r)
				if err := res.Err(); err != nil || len(res.Changes) > 0 {
					b.Fatalf("not a no-op: %v %v", res.Changes, err)
				}
			}
		}
		report(b, start)
	})
	b.Run(fmt.Sprintf("dry-run-every-object/children=%d", children), func(b *testing.B) {
		start := recentRequests.mark()
		for b.Loop() {
			for _, r := range reqs {
				objs := make([]*unstructured.Unstructured, len(r.Objects))
				for i, o := range r.Objects {
					objs[i] = o.DeepCopy()
				}
				if _, err := manager.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions()); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, start)
	})
}
