package render_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
)

var examples = map[string]string{
	"Memcached":     "../examples/memcached-sample.yaml",
	"WebApp":        "../examples/webapp-sample.yaml",
	"Database":      "../examples/database-sample.yaml",
	"Monitoring":    "../examples/monitoring-sample.yaml",
	"SearchCluster": "../examples/searchcluster-sample.yaml",
}

// BenchmarkRender renders each seed sample next to the floor: building the
// same objects as plain Go maps (a deep copy of the rendered ones allocates
// exactly those maps). Run: go test ./render -run '^$' -bench Render -benchmem
func BenchmarkRender(b *testing.B) {
	lib := loadLibrary(b, render.InProcess())
	workers := loadLibrary(b)
	for _, kind := range lib.Kinds() {
		cr := benchCR(b, kind.GVK.Kind)
		b.Run(kind.GVK.Kind+"/cue", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kind.Render(cr); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The operator's way: in a worker process, the request and the
		// children through a pipe.
		b.Run(kind.GVK.Kind+"/cue-in-worker", func(b *testing.B) {
			b.ReportAllocs()
			wk := workers.Kind(kind.GVK)
			for b.Loop() {
				if _, err := wk.Render(cr); err != nil {
					b.Fatal(err)
				}
			}
		})
		out, err := kind.Render(cr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kind.GVK.Kind+"/plain-go", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				objs := make([]*unstructured.Unstructured, len(out.Objects))
				for i, o := range out.Objects {
					objs[i] = o.DeepCopy()
				}
			}
		})
	}
}

// Renders fill Go values into the compiled template and never compile CR
// bytes into its context, so the heap stays flat however many CRs render.
// CUERATOR_RENDERS sets the count (the figure in BENCHMARKS.md is 100000).
func TestRenderHeapStaysFlat(t *testing.T) {
	renders := 5000
	if n, err := fmt.Sscan(os.Getenv("CUERATOR_RENDERS"), &renders); n == 0 || err != nil {
		renders = 5000
	}
	// In this process: the heap measured is the one that evaluates.
	lib := loadLibrary(t, render.InProcess())
	kind := lib.Kind(memcachedGVK)
	cr := readCR(t, examples["Memcached"])
	render := func(n int) {
		for i := range n {
			cr.SetName(fmt.Sprintf("cr-%d", i))
			_ = unstructured.SetNestedField(cr.Object, int64(1+i%10), "spec", "size")
			if _, err := kind.Render(cr); err != nil {
				t.Fatal(err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	render(renders / 10) // warm up caches that are meant to stay
	before := heap()
	render(renders)
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("heap after warm-up %d KiB, after %d more renders %d KiB (%+d bytes/render)", before/1024, renders, after/1024, growth/int64(renders))
	// 1 KiB per render would be a leak that sinks an operator with many CRs.
	if growth > int64(renders)*1024 {
		t.Errorf("heap grew by %d bytes over %d renders", growth, renders)
	}
}

// BenchmarkStatus projects each seed sample's status from its children as
// observed live (what each reconcile does after the apply), in this
// process and, the operator's way, in a worker process.
// Run: go test ./render -run '^$' -bench Status -benchmem
func BenchmarkStatus(b *testing.B) {
	lib := loadLibrary(b, render.InProcess())
	workers := loadLibrary(b)
	for _, kind := range lib.Kinds() {
		cr := benchCR(b, kind.GVK.Kind)
		for _, via := range []struct {
			name string
			lib  *render.Library
		}{{"cue", lib}, {"cue-in-worker", workers}} {
			rendered, err := via.lib.Kind(kind.GVK).Render(cr)
			if err != nil {
				b.Fatal(err)
			}
			obs := render.Observed{Children: map[string]any{}}
			for i, obj := range rendered.Objects {
				live := obj.DeepCopy()
				live.SetResourceVersion("12345")
				_ = unstructured.SetNestedField(live.Object, map[string]any{"replicas": int64(1), "readyReplicas": int64(1), "observedGeneration": int64(1)}, "status")
				obs.Children[rendered.Keys[i]] = live.Object
			}
			b.Run(kind.GVK.Kind+"/"+via.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := rendered.Status(obs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchCR is the seed sample of kind as the operator would read it: in a
// namespace, with a uid.
func benchCR(b *testing.B, kind string) *unstructured.Unstructured {
	cr := readCR(b, examples[kind])
	cr.SetNamespace("bench")
	cr.SetUID("00000000-0000-4000-8000-000000000001")
	return cr
}
