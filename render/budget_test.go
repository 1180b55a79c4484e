package render_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// pairsModule is a template a CR author can make explode: it pairs every
// item of spec.items with every other, so n items make n² fields.
func pairsModule(t *testing.T) string {
	t.Helper()
	dir := moduleWith(t, plainModule, `package x
childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, ...}, spec: items: [...string]}
objects: cm: {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: cr.metadata.name
	data: {
		for i, a in cr.spec.items for j, b in cr.spec.items {
			"\(i)-\(j)": a + b
		}
	}
}
status: pairs: len(objects.cm.data)
`)
	return dir
}

func pairsCR(name string, n int) *unstructured.Unstructured {
	items := make([]any, n)
	for i := range items {
		items[i] = "item-" + strconv.Itoa(i)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sec.test/v1", "kind": "X",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec":     map[string]any{"items": items},
	}}
}

// peakRSS is this process's peak resident set, from /proc (Linux).
func peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func wantBudget(t *testing.T, err error, budget string) *render.BudgetError {
	t.Helper()
	var berr *render.BudgetError
	if !errors.As(err, &berr) {
		t.Fatalf("want a *render.BudgetError (%s), got %v", budget, err)
	}
	if berr.Budget != budget || !strings.Contains(err.Error(), budget+" budget") {
		t.Fatalf("want the %s budget named, got %v", budget, err)
	}
	return berr
}

// A CR whose render would take minutes and GiBs (a thousand items paired:
// a million fields) ends with a *BudgetError naming the time budget; the
// worker that evaluated it is killed, so this process's memory stays where
// it was; and other CRs render meanwhile and afterwards.
func TestRenderOverTimeBudgetIsStopped(t *testing.T) {
	lib, err := render.Load(os.DirFS(pairsModule(t)), render.WithBudget(render.Budget{Time: 500 * time.Millisecond, Memory: 1536 << 20}), render.Workers(2))
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	before := peakRSS(t)

	var wg sync.WaitGroup
	var runawayErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, runawayErr = lib.RenderCR(pairsCR("runaway", 1000))
	}()
	// Meanwhile, and on the other worker, a small CR renders.
	for i := range 3 {
		out, err := lib.RenderCR(pairsCR(fmt.Sprintf("small-%d", i), 3))
		if err != nil {
			t.Fatalf("a small CR while the runaway renders: %v", err)
		}
		if data := out.Objects[0].Object["data"].(map[string]any); len(data) != 9 {
			t.Errorf("small CR: %d pairs, want 9", len(data))
		}
	}
	wg.Wait()
	berr := wantBudget(t, runawayErr, render.BudgetTime)
	if berr.Limit != "500ms" {
		t.Errorf("limit %q, want 500ms", berr.Limit)
	}
	// The worker's memory went with it: this process grew by far less than
	// the evaluation would have needed (GiBs).
	if grew := peakRSS(t) - before; grew > 64<<20 {
		t.Errorf("this process's peak RSS grew by %d MiB during the runaway render", grew>>20)
	}

	// The same spec is not evaluated again: the error is remembered.
	again := wantBudget(t, func() error { _, err := lib.RenderCR(pairsCR("runaway", 1000)); return err }(), render.BudgetTime)
	if again.Detail != berr.Detail {
		t.Errorf("the remembered error differs: %v", again)
	}
	// And the library still renders, on fresh workers.
	if _, err := lib.RenderCR(pairsCR("after", 4)); err != nil {
		t.Fatalf("after the runaway: %v", err)
	}
}

// A render whose heap outgrows the memory budget ends its worker, with a
// *BudgetError naming the memory budget.
func TestRenderOverMemoryBudgetIsStopped(t *testing.T) {
	lib, err := render.Load(os.DirFS(pairsModule(t)), render.WithBudget(render.Budget{Time: 5 * time.Minute, Memory: 64 << 20}), render.Workers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	_, err = lib.RenderCR(pairsCR("hungry", 1000))
	wantBudget(t, err, render.BudgetMemory)
	if !strings.Contains(err.Error(), "64 MiB") {
		t.Errorf("the limit is not named: %v", err)
	}
	if _, err := lib.RenderCR(pairsCR("after", 4)); err != nil {
		t.Fatalf("after the runaway: %v", err)
	}
}

// In-process (the CLI), a render over its time is given up on too. The
// evaluation goes on in the background until it ends, so this one is
// small: a few seconds and some 100 MiB, against a budget of 200 ms.
func TestRenderInProcessOverTimeBudget(t *testing.T) {
	lib, err := render.Load(os.DirFS(pairsModule(t)), render.InProcess(), render.WithBudget(render.Budget{Time: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lib.RenderCR(pairsCR("runaway", 200))
	wantBudget(t, err, render.BudgetTime)
}

// The children's number and size are bounded as the API server and etcd
// bound what they store; the error names the child.
func TestRenderOverOutputBudgets(t *testing.T) {
	dir := moduleWith(t, plainModule, `package x
import "strings"
childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, ...}, spec: {copies: int | *1, kib: int | *1}}
_kib: strings.Repeat("x", 1024)
objects: {
	for i in list.Range(0, cr.spec.copies, 1) {
		"cm\(i)": {
			apiVersion: "v1"
			kind:       "ConfigMap"
			metadata: name: "cm-\(i)"
			data: blob: strings.Repeat(_kib, cr.spec.kib)
		}
	}
}
`)
	// The template needs the list package too.
	body, _ := os.ReadFile(dir + "/x/x.cue")
	if err := os.WriteFile(dir+"/x/x.cue", []byte(strings.Replace(string(body), `import "strings"`, "import (\n\t\"list\"\n\t\"strings\"\n)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		opts []render.Option
	}{{"workers", nil}, {"in-process", []render.Option{render.InProcess()}}} {
		t.Run(mode.name, func(t *testing.T) {
			lib, err := render.Load(os.DirFS(dir), append(mode.opts, render.WithBudget(render.Budget{Children: 10, ChildBytes: 1 << 20, Bytes: 3 << 20}))...)
			if err != nil {
				t.Fatal(err)
			}
			defer lib.Close()
			cr := func(copies, kib int) *unstructured.Unstructured {
				return &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "sec.test/v1", "kind": "X",
					"metadata": map[string]any{"name": "a", "namespace": "ns"},
					"spec":     map[string]any{"copies": int64(copies), "kib": int64(kib)},
				}}
			}
			if out, err := lib.RenderCR(cr(10, 1)); err != nil || len(out.Objects) != 10 {
				t.Fatalf("10 children of 1 KiB: %v", err)
			}
			_, err = lib.RenderCR(cr(11, 10))
			if berr := wantBudget(t, err, render.BudgetChildren); !strings.Contains(berr.Error(), "10 children") {
				t.Errorf("the limit is not named: %v", berr)
			}
			_, err = lib.RenderCR(cr(1, 2<<10))
			if berr := wantBudget(t, err, render.BudgetSize); !strings.Contains(berr.Error(), "objects.cm0 is 2.0 MiB") {
				t.Errorf("the child is not named: %v", berr)
			}
			_, err = lib.RenderCR(cr(4, 900))
			if berr := wantBudget(t, err, render.BudgetSize); !strings.Contains(berr.Error(), "3 MiB of children") {
				t.Errorf("the limit is not named: %v", berr)
			}
		})
	}
}

// A render in a worker process gives what one in this process gives: the
// same children, status and errors.
func TestRenderInWorkersAgreesWithInProcess(t *testing.T) {
	workers, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	defer workers.Close()
	local, err := render.Load(schemas.FS, render.InProcess())
	if err != nil {
		t.Fatal(err)
	}
	obs := render.Observed{
		Pods:     []render.ObservedPod{{Name: "p-1"}},
		Children: map[string]any{"deployment": map[string]any{"status": map[string]any{"replicas": int64(3), "readyReplicas": int64(2)}}},
	}
	for _, path := range []string{"../examples/memcached-sample.yaml", webAppSample} {
		cr := readCR(t, path)
		cr.SetNamespace("team-a")
		cr.SetUID("5f1c3a8e-0000-4000-8000-000000000009")
		a, err := workers.RenderCR(cr)
		if err != nil {
			t.Fatal(err)
		}
		b, err := local.RenderCR(cr)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Objects, b.Objects) || !reflect.DeepEqual(a.Keys, b.Keys) || !reflect.DeepEqual(a.PodSelector, b.PodSelector) {
			t.Errorf("%s: the children differ between a worker and this process", path)
		}
		sa, err := a.Status(obs)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := b.Status(obs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sa, sb) {
			t.Errorf("%s: status %v in a worker, %v here", path, sa, sb)
		}

		// A spec error: the same field errors, of the same type.
		bad := cr.DeepCopy()
		bad.Object["spec"].(map[string]any)["replicas"] = "many"
		bad.Object["spec"].(map[string]any)["size"] = "many"
		_, errA := workers.RenderCR(bad)
		_, errB := local.RenderCR(bad)
		var va, vb *render.ValidationError
		if !errors.As(errA, &va) || !errors.As(errB, &vb) || !reflect.DeepEqual(va.Errs, vb.Errs) {
			t.Errorf("%s: spec errors differ:\n worker: %v\n here:   %v", path, errA, errB)
		}
	}
}

// workerCount counts this process's children (Linux /proc): its render
// workers.
func workerCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	n := 0
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			n++
		}
	}
	return n
}

// Workers start when renders need them, at most Workers of them, and end
// with the library.
func TestWorkersEndWithTheLibrary(t *testing.T) {
	before := workerCount(t)
	lib, err := render.Load(schemas.FS, render.Workers(2))
	if err != nil {
		t.Fatal(err)
	}
	if n := workerCount(t) - before; n != 0 {
		t.Errorf("%d workers before any render", n)
	}
	cr := readCR(t, "../examples/memcached-sample.yaml")
	cr.SetNamespace("a")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := lib.RenderCR(cr); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := workerCount(t) - before; n < 1 || n > 2 {
		t.Errorf("%d workers for 8 concurrent renders, want 1 or 2", n)
	}
	lib.Close()
	deadline := time.Now().Add(10 * time.Second)
	for workerCount(t) > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers left after Close", workerCount(t)-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := lib.RenderCR(cr); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a render after Close: %v", err)
	}
}
