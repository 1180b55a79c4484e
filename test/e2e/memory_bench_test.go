package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/schemas"
)

// The memory benchmark runs `cuerator run` as a process of its own, so that
// its RSS is the operator's alone, on the WebApp kind moved to a group of its
// own: the in-process operator of TestMain, which reconciles the built-in
// kinds everywhere, never sees these CRs.
const (
	memoryGroup = "apps.memory.test.cuerator.dev"
	memoryCRD   = "webapps." + memoryGroup
	// memoryController names the WebApp controller in controller-runtime's
	// metrics.
	memoryController = "webapp." + memoryGroup

	// An hour of a GitOps-style 10-minute resync interval is 6 resyncs.
	memoryResyncs = 6
	// The informers spread their resyncs over [0.9, 1.1) of --sync-period,
	// so a window of memoryResyncs periods times this holds at least
	// memoryResyncs resyncs of every informer.
	memoryResyncJitter = 1.1
	// At least memorySamples memory readings, memorySampleGap apart, and
	// on until the operator has run a GC (the runtime forces one every 2
	// minutes), catch the heap both just before and just after a GC.
	memorySamples   = 6
	memorySampleGap = 2 * time.Second
	memorySampleMax = 3 * time.Minute
	// memoryCreators is how many WebApps are created at once.
	memoryCreators = 16
)

// BenchmarkOperatorMemory measures the operator's resident memory and Go
// heap once it has converged N WebApps (3 children each: Deployment,
// Service, Ingress), and again after 6 compressed resync periods, the
// resyncs of an hour at a 10-minute interval, to show whether it grows.
//
// Run: go test ./test/e2e -run '^$' -bench OperatorMemory -benchtime 1x -timeout 90m
// CUERATOR_BENCH_MEMORY_CRS is a comma list of N (default 1000);
// CUERATOR_BENCH_MEMORY_PROFILES names a directory for the operator's heap
// profiles, converged and after the resyncs, to tell what grew:
// go tool pprof -base converged.heap resynced.heap;
// CUERATOR_BENCH_MEMORY_SYNC_PERIOD overrides the compressed resync period
// (default N×40ms, at least 30s: long enough for a full resync to finish).
func BenchmarkOperatorMemory(b *testing.B) {
	counts, err := memoryCRCounts(os.Getenv("CUERATOR_BENCH_MEMORY_CRS"))
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "cuerator")
	goBuild(b, "go", "build", "-o", bin, "./cmd/cuerator")
	templates, err := memoryTemplates(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	installTemplateCRD(b, bin, templates, memoryCRD)
	// Fast enough that creating and listing tens of thousands of objects
	// is not throttled on the client side.
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	api, err := client.New(cfg, client.Options{})
	if err != nil {
		b.Fatal(err)
	}

	for _, n := range counts {
		b.Run(fmt.Sprintf("CRs=%d", n), func(b *testing.B) {
			syncPeriod, err := memorySyncPeriod(n)
			if err != nil {
				b.Fatal(err)
			}
			var r memoryResult
			iteration := 0
			for b.Loop() {
				r = memoryMeasure(b, api, bin, templates, n, syncPeriod, iteration)
				iteration++
			}
			r.report(b)
		})
	}
}

// memoryResult is one run's readings.
type memoryResult struct {
	crs                 int
	syncPeriod          time.Duration
	converged, resynced memoryRange
	convergeTime        time.Duration
	resyncTime          time.Duration
	// reconciles counts those of the resync window, and their time.
	reconciles memoryReconciles
}

func (r memoryResult) report(b *testing.B) {
	b.ReportMetric(mib(r.converged.min.rss), "converged-rss-min-MiB")
	b.ReportMetric(mib(r.converged.max.rss), "converged-rss-max-MiB")
	b.ReportMetric(mib(r.converged.max.withWorkers), "converged-rss-with-workers-max-MiB")
	b.ReportMetric(mib(r.resynced.max.withWorkers), "resynced-rss-with-workers-max-MiB")
	b.ReportMetric(mib(r.converged.min.heapInuse), "converged-heap-inuse-min-MiB")
	b.ReportMetric(mib(r.converged.max.heapInuse), "converged-heap-inuse-max-MiB")
	b.ReportMetric(mib(r.resynced.min.rss), "resynced-rss-min-MiB")
	b.ReportMetric(mib(r.resynced.max.rss), "resynced-rss-max-MiB")
	b.ReportMetric(mib(r.resynced.min.heapInuse), "resynced-heap-inuse-min-MiB")
	b.ReportMetric(mib(r.resynced.max.heapInuse), "resynced-heap-inuse-max-MiB")
	// Growth between the minima: the readings nearest a GC, with the least
	// garbage in them.
	b.ReportMetric(mib(r.resynced.min.rss-r.converged.min.rss), "rss-growth-MiB")
	b.ReportMetric(mib(r.resynced.min.heapInuse-r.converged.min.heapInuse), "heap-inuse-growth-MiB")
	b.Logf("| CRs | children | RSS converged (MiB) | heap inuse converged | heap alloc converged | RSS after %d resyncs | heap inuse after | heap alloc after | reconciles/CR in the window | mean reconcile (ms) | converge | resync window |", memoryResyncs)
	b.Logf("| %d | %d | %s | %s | %s | %s | %s | %s | %.1f | %.2f | %s | %s (--sync-period %s) |",
		r.crs, 3*r.crs,
		r.converged.span(func(s memorySample) float64 { return s.rss }),
		r.converged.span(func(s memorySample) float64 { return s.heapInuse }),
		r.converged.span(func(s memorySample) float64 { return s.heapAlloc }),
		r.resynced.span(func(s memorySample) float64 { return s.rss }),
		r.resynced.span(func(s memorySample) float64 { return s.heapInuse }),
		r.resynced.span(func(s memorySample) float64 { return s.heapAlloc }),
		r.reconciles.count/float64(r.crs),
		1000*r.reconciles.seconds/r.reconciles.count,
		r.convergeTime.Round(time.Second), r.resyncTime.Round(time.Second), r.syncPeriod)
}

// memoryMeasure runs one operator on n new WebApps and reads its memory
// once they have converged and again after memoryResyncs resync periods.
func memoryMeasure(b *testing.B, api client.Client, bin, templates string, n int, syncPeriod time.Duration, iteration int) memoryResult {
	ns := fmt.Sprintf("bench-memory-%d-%d", n, iteration)
	if out, err := kubectlOut(testCluster.KubeconfigPath, "create", "namespace", ns); err != nil {
		b.Fatalf("create namespace %s: %v: %s", ns, err, out)
	}
	defer func() {
		if out, err := kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", ns, "--wait=false"); err != nil {
			b.Logf("delete namespace %s: %v: %s", ns, err, out)
		}
	}()
	profiles := os.Getenv("CUERATOR_BENCH_MEMORY_PROFILES")
	pprofAddr := "0"
	if profiles != "" {
		pprofAddr = freeAddr(b)
	}
	op := startOperator(b, bin, fmt.Sprintf("memory-%d", n),
		"--templates", templates, "--watch-namespace", ns,
		"--pprof-bind-address", pprofAddr,
		"--zap-log-level=info", // not a line per reconcile
		"--sync-period", syncPeriod.String(),
		// The first reconcile of a CR costs about 10 requests (a GET and a
		// dry-run per child, creates, status writes): at the default 50/s
		// 10,000 CRs would take half an hour.
		"--kube-api-qps=500", "--kube-api-burst=1000")
	defer op.stop(b)

	r := memoryResult{crs: n, syncPeriod: syncPeriod}
	start := time.Now()
	if err := memoryCreateWebApps(api, ns, n); err != nil {
		b.Fatal(err)
	}
	memoryProgress("created %d WebApps in %s", n, time.Since(start).Round(time.Second))
	// Every 3 s, and every few seconds more per thousand CRs: a list of
	// them all is itself work for the API server and this process.
	listEvery := 3*time.Second + time.Duration(n/1000)*time.Second
	if err := memoryWaitReady(b, api, op, ns, n, 10*time.Minute+time.Duration(n)*200*time.Millisecond, listEvery); err != nil {
		b.Fatal(err)
	}
	r.convergeTime = time.Since(start)
	memoryProgress("all %d WebApps Ready in %s", n, r.convergeTime.Round(time.Second))
	// Readiness of the last pods still sends events that reconcile their
	// CRs: measure once the operator has nothing left to do, which a
	// resync may put off by up to a period.
	idleTimeout := 2*time.Minute + 2*syncPeriod
	atConverged, err := memoryWaitIdle(b, op, idleTimeout)
	if err != nil {
		b.Fatal(err)
	}
	if r.converged, err = memorySampleMemory(b, op); err != nil {
		b.Fatal(err)
	}
	memoryHeapProfile(b, profiles, pprofAddr, fmt.Sprintf("%d-converged.heap", n))

	window := time.Duration(float64(memoryResyncs) * memoryResyncJitter * float64(syncPeriod))
	b.Logf("converged %d WebApps in %s: %s", n, r.convergeTime.Round(time.Second), r.converged)
	memoryProgress("waiting %s for %d resyncs of --sync-period %s", window.Round(time.Second), memoryResyncs, syncPeriod)
	resyncStart := time.Now()
	memoryRunFor(b, op, window)
	// The last resync's reconciles may still be queued.
	atEnd, err := memoryWaitIdle(b, op, idleTimeout)
	if err != nil {
		b.Fatal(err)
	}
	r.resyncTime = time.Since(resyncStart)
	r.reconciles = memoryReconciles{count: atEnd.count - atConverged.count, seconds: atEnd.seconds - atConverged.seconds}
	// A resync reconciles every CR at least once; fewer reconciles mean the
	// window did not hold the resyncs it stands for.
	if r.reconciles.count < float64(memoryResyncs*n) {
		b.Fatalf("%v reconciles in %s, fewer than %d resyncs of %d CRs", r.reconciles.count, r.resyncTime, memoryResyncs, n)
	}
	if r.resynced, err = memorySampleMemory(b, op); err != nil {
		b.Fatal(err)
	}
	memoryHeapProfile(b, profiles, pprofAddr, fmt.Sprintf("%d-resynced.heap", n))
	b.Logf("after %d resyncs (%v reconciles): %s", memoryResyncs, r.reconciles.count, r.resynced)
	return r
}

// memoryHeapProfile writes the operator's heap profile, taken after a GC,
// into dir as name; with no dir it does nothing.
func memoryHeapProfile(b testing.TB, dir, addr, name string) {
	if dir == "" {
		return
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatalf("heap profile: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("heap profile: %s", resp.Status)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatalf("heap profile: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
		b.Fatal(err)
	}
	memoryProgress("heap profile written: %s", filepath.Join(dir, name))
}

// memoryProgress tells, as it happens, how a run that may take an hour
// goes; the testing package shows a benchmark's log only at its end, and
// only its first lines.
func memoryProgress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "BenchmarkOperatorMemory: "+format+"\n", args...)
}

// memoryCRCounts parses the comma list of CR counts; empty means 1000.
func memoryCRCounts(list string) ([]int, error) {
	if list == "" {
		return []int{1000}, nil
	}
	var counts []int
	for _, field := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("CUERATOR_BENCH_MEMORY_CRS=%q: %q is not a positive count", list, field)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// memorySyncPeriod is the compressed resync period for n CRs: a resync
// reconciles every CR up to three times (once per child informer), and a
// no-op reconcile takes a few milliseconds, tens on a busy machine; 40 ms
// per CR leaves the operator idle between resyncs.
func memorySyncPeriod(n int) (time.Duration, error) {
	if s := os.Getenv("CUERATOR_BENCH_MEMORY_SYNC_PERIOD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("CUERATOR_BENCH_MEMORY_SYNC_PERIOD=%q: not a positive duration", s)
		}
		return d, nil
	}
	return max(30*time.Second, time.Duration(n)*40*time.Millisecond), nil
}

// memoryTemplates writes into dir the template module with the WebApp kind
// alone, moved to memoryGroup, so the operator serves nothing else.
func memoryTemplates(dir string) (string, error) {
	return movedKindTemplates(dir, "webapp", "apps.example.com", memoryGroup)
}

// movedKindTemplates writes into dir the template module with one shipped
// kind alone (its directory), moved from group to a group of its own, so
// that an operator on it serves nothing else and TestMain's operator, which
// reconciles the shipped kinds, never sees its CRs.
func movedKindTemplates(dir, kind, group, to string) (string, error) {
	for _, part := range []string{"cue.mod", "common", kind} {
		sub, err := fs.Sub(schemas.FS, part)
		if err != nil {
			return "", err
		}
		if err := os.CopyFS(filepath.Join(dir, part), sub); err != nil {
			return "", fmt.Errorf("copying templates %s: %w", part, err)
		}
	}
	apiFile := filepath.Join(dir, kind, "api", "api.cue")
	src, err := os.ReadFile(apiFile)
	if err != nil {
		return "", err
	}
	shipped := []byte(`group:    "` + group + `"`)
	if !bytes.Contains(src, shipped) {
		return "", fmt.Errorf("%s no longer declares %s", apiFile, shipped)
	}
	moved := bytes.Replace(src, shipped, []byte(`group:    "`+to+`"`), 1)
	return dir, os.WriteFile(apiFile, moved, 0o644)
}

// memoryCreateWebApps creates n WebApps with one replica each,
// memoryCreators at a time.
func memoryCreateWebApps(api client.Client, ns string, n int) error {
	errs := make([]error, memoryCreators)
	var wg sync.WaitGroup
	for creator := range memoryCreators {
		wg.Go(func() {
			for i := creator; i < n; i += memoryCreators {
				app := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": memoryGroup + "/v1alpha1",
					"kind":       "WebApp",
					"metadata":   map[string]any{"name": fmt.Sprintf("app-%05d", i), "namespace": ns},
					"spec": map[string]any{
						"replicas": int64(1),
						"image":    "nginx:alpine",
						"domain":   fmt.Sprintf("app-%05d.example.com", i),
					},
				}}
				if err := api.Create(context.Background(), app); err != nil {
					errs[creator] = fmt.Errorf("creating WebApp %s: %w", app.GetName(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// memoryWaitReady lists the WebApps of ns every listEvery until n of them
// are Ready=True at their generation.
func memoryWaitReady(b *testing.B, api client.Client, op *operatorProcess, ns string, n int, timeout, listEvery time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		op.mustRun(b)
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: memoryGroup, Version: "v1alpha1", Kind: "WebAppList"})
		if err := api.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("listing WebApps: %w", err)
		}
		ready := 0
		var notReady string
		for _, app := range list.Items {
			observed, _, _ := unstructured.NestedInt64(app.Object, "status", "observedGeneration")
			// Ready is True with reason Succeeded, and only then.
			reason := readyReason(app)
			if observed == app.GetGeneration() && reason == "Succeeded" {
				ready++
			} else if notReady == "" {
				notReady = fmt.Sprintf("%s (generation %d, observed %d, Ready reason %q)", app.GetName(), app.GetGeneration(), observed, reason)
			}
		}
		if ready == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d WebApps Ready at their generation after %s; first not: %s", ready, n, timeout, notReady)
		}
		if time.Since(lastLog) > 30*time.Second {
			memoryProgress("%d of %d WebApps Ready", ready, n)
			lastLog = time.Now()
		}
		time.Sleep(listEvery)
	}
}

// memoryRunFor waits d, checking every few seconds that op still runs.
func memoryRunFor(b *testing.B, op *operatorProcess, d time.Duration) {
	end := time.Now().Add(d)
	lastLog := time.Now()
	for time.Now().Before(end) {
		select {
		case <-op.exited:
			op.mustRun(b)
		case <-time.After(min(5*time.Second, time.Until(end))):
		}
		if time.Since(lastLog) > time.Minute {
			reconciles := op.metric(b, "controller_runtime_reconcile_total", map[string]string{"controller": memoryController})
			memoryProgress("%s left; %v reconciles so far", time.Until(end).Round(time.Second), reconciles)
			lastLog = time.Now()
		}
	}
}

// memoryReconciles counts the WebApp controller's reconciles and the time
// they took.
type memoryReconciles struct{ count, seconds float64 }

// memoryWaitIdle waits until the WebApp controller has nothing queued or
// running and its reconcile count stands still between two scrapes, and
// returns its reconciles so far.
func memoryWaitIdle(b *testing.B, op *operatorProcess, timeout time.Duration) (memoryReconciles, error) {
	controller := map[string]string{"controller": memoryController}
	previous := -1.0
	for deadline := time.Now().Add(timeout); ; time.Sleep(2 * time.Second) {
		fams := op.scrape(b)
		reconciles := sumMetric(fams, "controller_runtime_reconcile_total", controller)
		queued := sumMetric(fams, "workqueue_depth", map[string]string{"name": memoryController})
		active := sumMetric(fams, "controller_runtime_active_workers", controller)
		if queued == 0 && active == 0 && reconciles == previous {
			var seconds float64
			for _, m := range fams["controller_runtime_reconcile_time_seconds"].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "controller" && l.GetValue() == memoryController {
						seconds += m.GetHistogram().GetSampleSum()
					}
				}
			}
			return memoryReconciles{count: reconciles, seconds: seconds}, nil
		}
		if time.Now().After(deadline) {
			return memoryReconciles{}, fmt.Errorf("operator not idle after %s: %v queued, %v reconciling, %v reconciles", timeout, queued, active, reconciles)
		}
		previous = reconciles
	}
}

// memorySample is one reading, in bytes.
// withWorkers is the memory of the operator and its render workers
// together, as the pod's memory cgroup charges it: their anonymous memory,
// and the binary's file pages, which they share, once.
type memorySample struct{ rss, heapInuse, heapAlloc, withWorkers float64 }

// memoryRange holds, for each figure, the least and the most of several
// readings.
type memoryRange struct{ min, max memorySample }

func (r memoryRange) span(figure func(memorySample) float64) string {
	return fmt.Sprintf("%.1f–%.1f", mib(figure(r.min)), mib(figure(r.max)))
}

func (r memoryRange) String() string {
	return fmt.Sprintf("RSS %s MiB, heap inuse %s MiB, heap alloc %s MiB",
		r.span(func(s memorySample) float64 { return s.rss }),
		r.span(func(s memorySample) float64 { return s.heapInuse }),
		r.span(func(s memorySample) float64 { return s.heapAlloc }))
}

// memorySampleMemory reads RSS and heap memorySamples times over about
// 10 s, and on until a GC has run between two readings.
func memorySampleMemory(b testing.TB, op *operatorProcess) (memoryRange, error) {
	var r memoryRange
	var firstGC float64
	deadline := time.Now().Add(memorySampleMax)
	for i := 0; ; i++ {
		if i > 0 {
			time.Sleep(memorySampleGap)
		}
		rss, err := memoryRSS(op.cmd.Process.Pid)
		if err != nil {
			return r, err
		}
		fams := op.scrape(b)
		s := memorySample{
			rss:       rss,
			heapInuse: sumMetric(fams, "go_memstats_heap_inuse_bytes", nil),
			heapAlloc: sumMetric(fams, "go_memstats_heap_alloc_bytes", nil),
			// The binary's file pages, which the workers share, once.
			withWorkers: float64(treeMemory(op.cmd.Process.Pid, "RssAnon:") + statusBytes(op.cmd.Process.Pid, "RssFile:")),
		}
		lastGC := sumMetric(fams, "go_memstats_last_gc_time_seconds", nil)
		if i == 0 {
			r.min, r.max, firstGC = s, s, lastGC
			continue
		}
		r.min = memorySample{min(r.min.rss, s.rss), min(r.min.heapInuse, s.heapInuse), min(r.min.heapAlloc, s.heapAlloc), min(r.min.withWorkers, s.withWorkers)}
		r.max = memorySample{max(r.max.rss, s.rss), max(r.max.heapInuse, s.heapInuse), max(r.max.heapAlloc, s.heapAlloc), max(r.max.withWorkers, s.withWorkers)}
		if i+1 >= memorySamples && lastGC != firstGC {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("no GC in the operator within %s of sampling", memorySampleMax)
		}
	}
}

// memoryRSS reads VmRSS, the resident set, from /proc/PID/status.
func memoryRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if value, ok := strings.CutPrefix(lines.Text(), "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, value, err)
			}
			return kib * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS: %v", pid, lines.Err())
}

func mib(bytes float64) float64 { return bytes / (1 << 20) }
