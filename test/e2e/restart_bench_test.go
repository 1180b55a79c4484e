package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
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
)

// restartKind is a shipped kind as the restart benchmark runs it, moved to a
// group of its own.
type restartKind struct {
	dir, group, kind, plural string
	children                 int
	spec                     func(i int) map[string]any
}

var restartKinds = map[string]restartKind{
	"memcached": {dir: "memcached", group: "cache.example.com", kind: "Memcached", plural: "memcacheds", children: 1,
		spec: func(int) map[string]any { return map[string]any{"size": int64(1)} }},
	"webapp": {dir: "webapp", group: "apps.example.com", kind: "WebApp", plural: "webapps", children: 3,
		spec: func(i int) map[string]any {
			return map[string]any{"replicas": int64(1), "image": "nginx:alpine", "domain": fmt.Sprintf("app-%05d.example.com", i)}
		}},
}

const restartGroupSuffix = ".restart.test.cuerator.dev"

// BenchmarkRestart measures what an operator restart or a leader failover
// costs with N Ready CRs whose children are all unchanged: the operator that
// converged them is killed (SIGKILL, as a node failure or an eviction
// would), a new one starts, and the benchmark counts the new process's API
// requests (its own client metrics), the time until it is idle and its
// memory. A third process then restarts the same way with Go's soft memory
// limit as `run` sets it in the shipped 512Mi container (GOMEMLIMIT 0.8 of
// that), for the memory the deployed operator would hold. The operator
// that converged the CRs runs with that limit too, and its peak RSS
// (VmHWM) is what creating and converging them took.
//
// Run: CUERATOR_BENCH_RESTART=memcached:1000,webapp:1000 go test ./test/e2e -run '^$' -bench Restart -benchtime 1x -timeout 90m
// (kind:N pairs; default memcached:1000). CUERATOR_BENCH_PROFILE=dir also
// saves the restarted operator's heap profile there.
func BenchmarkRestart(b *testing.B) {
	runs, err := restartRuns(os.Getenv("CUERATOR_BENCH_RESTART"))
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "cuerator")
	goBuild(b, "go", "build", "-o", bin, "./cmd/cuerator")
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	api, err := client.New(cfg, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, run := range runs {
		k := restartKinds[run.kind]
		b.Run(fmt.Sprintf("%s=%d", run.kind, run.n), func(b *testing.B) {
			group := k.dir + restartGroupSuffix
			templates, err := movedKindTemplates(b.TempDir(), k.dir, k.group, group)
			if err != nil {
				b.Fatal(err)
			}
			installTemplateCRD(b, bin, templates, k.plural+"."+group)
			var r restartResult
			iteration := 0
			for b.Loop() {
				r = restartMeasure(b, api, bin, templates, k, group, run.n, iteration)
				iteration++
			}
			b.ReportMetric(r.requests, "requests")
			b.ReportMetric(r.requests/float64(run.n), "requests/CR")
			b.ReportMetric(r.requests/float64(run.n*k.children), "requests/child")
			b.ReportMetric(r.idle.Seconds(), "s-to-idle")
			b.ReportMetric(r.reconciles/float64(run.n), "reconciles/CR")
			b.ReportMetric(mib(r.rss), "rss-MiB")
			b.ReportMetric(mib(r.heapInuse), "heap-inuse-MiB")
			b.ReportMetric(mib(r.limitedRSS), "rss-at-512Mi-limit-MiB")
			b.ReportMetric(mib(r.limitedHeapInuse), "heap-inuse-at-512Mi-limit-MiB")
			b.ReportMetric(r.limitedRequests, "requests-at-512Mi-limit")
			b.ReportMetric(mib(r.convergingPeakRSS), "converging-peak-rss-at-512Mi-limit-MiB")
			b.Logf("| %s | %d | %d | %.0f | %.2f | %.3f | %.1f | %.2f | %.0f |", k.kind, run.n, run.n*k.children,
				r.requests, r.requests/float64(run.n), r.requests/float64(run.n*k.children), r.idle.Seconds(), r.reconciles/float64(run.n), mib(r.rss))
			b.Logf("requests by method and code: %v", r.byMethod)
		})
	}
}

type restartRun struct {
	kind string
	n    int
}

func restartRuns(list string) ([]restartRun, error) {
	if list == "" {
		list = "memcached:1000"
	}
	var runs []restartRun
	for _, field := range strings.Split(list, ",") {
		kind, count, ok := strings.Cut(strings.TrimSpace(field), ":")
		n, err := strconv.Atoi(count)
		if _, known := restartKinds[kind]; !ok || !known || err != nil || n < 1 {
			return nil, fmt.Errorf("CUERATOR_BENCH_RESTART=%q: %q is not kind:N with kind memcached or webapp", list, field)
		}
		runs = append(runs, restartRun{kind, n})
	}
	return runs, nil
}

type restartResult struct {
	requests   float64
	byMethod   map[string]float64
	idle       time.Duration
	reconciles float64
	rss        float64
	heapInuse  float64
	// The same restart with Go's soft memory limit of a 512Mi container.
	limitedRSS, limitedHeapInuse, limitedRequests float64
	// convergingPeakRSS is the peak RSS of the operator that created and
	// converged the CRs' children, at the 512Mi container's soft limit.
	convergingPeakRSS float64
}

// restartHeapProfile saves the operator's heap profile, after a GC, to path.
func restartHeapProfile(addr, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return os.WriteFile(path, body, 0o644)
}

func restartMeasure(b *testing.B, api client.Client, bin, templates string, k restartKind, group string, n, iteration int) restartResult {
	ns := fmt.Sprintf("bench-restart-%s-%d-%d", k.dir, n, iteration)
	if out, err := kubectlOut(testCluster.KubeconfigPath, "create", "namespace", ns); err != nil {
		b.Fatalf("create namespace %s: %v: %s", ns, err, out)
	}
	defer func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", ns, "--wait=false") }()
	args := []string{"--templates", templates, "--watch-namespace", ns, "--zap-log-level=info", "--kube-api-qps=500", "--kube-api-burst=1000"}
	controller := strings.ToLower(k.kind) + "." + group

	// The operator that converges them runs as the shipped Deployment
	// runs it: with run's soft memory limit in a 512Mi container.
	os.Setenv("GOMEMLIMIT", strconv.Itoa(chartMemoryLimit*8/10))
	first := startOperator(b, bin, fmt.Sprintf("restart-%s-%d-first", k.dir, n), args...)
	os.Unsetenv("GOMEMLIMIT")
	start := time.Now()
	if err := restartCreate(api, k, group, ns, n); err != nil {
		b.Fatal(err)
	}
	if err := restartWaitReady(b, api, first, k, group, ns, n, 10*time.Minute+time.Duration(n)*200*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	memoryProgress("restart: %d %ss Ready in %s", n, k.kind, time.Since(start).Round(time.Second))
	if _, err := restartWaitIdle(b, first, controller, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	// Its peak resident set, from its start through creating and
	// converging every child.
	convergedPeak := float64(statusBytes(first.cmd.Process.Pid, "VmHWM:"))
	first.kill(b)

	r := restartOnce(b, bin, fmt.Sprintf("restart-%s-%d-second", k.dir, n), controller, args, "", os.Getenv("CUERATOR_BENCH_PROFILE"))
	// Again, as the shipped Deployment runs it: in a container limited to
	// 512Mi, where run sets Go's soft memory limit to 0.8 of that.
	limited := restartOnce(b, bin, fmt.Sprintf("restart-%s-%d-limited", k.dir, n), controller, args, strconv.Itoa(chartMemoryLimit*8/10), "")
	r.limitedRSS, r.limitedHeapInuse, r.limitedRequests = limited.rss, limited.heapInuse, limited.requests
	r.convergingPeakRSS = convergedPeak
	return r
}

// chartMemoryLimit is the manager container's memory limit in the shipped
// manifests and chart (512Mi).
const chartMemoryLimit = 512 << 20

// restartOnce starts the operator (with GOMEMLIMIT=goMemLimit unless ""),
// waits until it is idle, and measures it; profileDir, unless "", receives
// its heap profile. It is killed after, as the next restart would find it.
func restartOnce(b *testing.B, bin, name, controller string, args []string, goMemLimit, profileDir string) restartResult {
	pprofAddr := freeAddr(b)
	if profileDir != "" {
		args = append(append([]string(nil), args...), "--pprof-bind-address="+pprofAddr)
	}
	if goMemLimit != "" {
		// The child inherits it; the benchmark's own runtime read its
		// limit at start and is unaffected.
		os.Setenv("GOMEMLIMIT", goMemLimit)
		defer os.Unsetenv("GOMEMLIMIT")
	}
	op := startOperator(b, bin, name, args...)
	started := time.Now()
	reconciles, err := restartWaitIdle(b, op, controller, 10*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	idle := time.Since(started)
	r := restartResult{idle: idle, reconciles: reconciles, byMethod: map[string]float64{}}
	fams := op.scrape(b)
	for _, m := range fams["rest_client_requests_total"].GetMetric() {
		var method, code string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "method":
				method = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		r.requests += m.GetCounter().GetValue()
		r.byMethod[method+" "+code] += m.GetCounter().GetValue()
	}
	if r.rss, err = memoryRSS(op.cmd.Process.Pid); err != nil {
		b.Fatal(err)
	}
	r.heapInuse = sumMetric(fams, "go_memstats_heap_inuse_bytes", nil)
	if profileDir != "" {
		path := filepath.Join(profileDir, name+".heap")
		if err := restartHeapProfile(pprofAddr, path); err != nil {
			b.Fatal(err)
		}
		memoryProgress("restart: heap profile in %s", path)
	}
	memoryProgress("restart: %s idle %s after its start, %.0f requests, RSS %.0f MiB", name, idle.Round(time.Second), r.requests, mib(r.rss))
	op.kill(b)
	return r
}

func restartCreate(api client.Client, k restartKind, group, ns string, n int) error {
	errs := make([]error, memoryCreators)
	var wg sync.WaitGroup
	for creator := range memoryCreators {
		wg.Go(func() {
			for i := creator; i < n; i += memoryCreators {
				cr := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": group + "/v1alpha1", "kind": k.kind,
					"metadata": map[string]any{"name": fmt.Sprintf("cr-%05d", i), "namespace": ns},
					"spec":     k.spec(i),
				}}
				if err := api.Create(context.Background(), cr); err != nil {
					errs[creator] = fmt.Errorf("creating %s %s: %w", k.kind, cr.GetName(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// restartWaitReady lists the CRs every few seconds until n are Ready at
// their generation.
func restartWaitReady(b testing.TB, api client.Client, op *operatorProcess, k restartKind, group, ns string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		op.mustRun(b)
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1alpha1", Kind: k.kind + "List"})
		if err := api.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, cr := range list.Items {
			if convergenceCRReady(cr) {
				ready++
			}
		}
		if ready == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d %ss Ready after %s", ready, n, k.kind, timeout)
		}
		time.Sleep(3*time.Second + time.Duration(n/1000)*time.Second)
	}
}

// restartWaitIdle waits until controller has nothing queued or running and
// its reconcile count stands still between two scrapes 2 s apart, and
// returns that count.
func restartWaitIdle(b testing.TB, op *operatorProcess, controller string, timeout time.Duration) (float64, error) {
	labels := map[string]string{"controller": controller}
	previous := -1.0
	for deadline := time.Now().Add(timeout); ; time.Sleep(2 * time.Second) {
		fams := op.scrape(b)
		reconciles := sumMetric(fams, "controller_runtime_reconcile_total", labels)
		queued := sumMetric(fams, "workqueue_depth", map[string]string{"name": controller})
		active := sumMetric(fams, "controller_runtime_active_workers", labels)
		if queued == 0 && active == 0 && reconciles > 0 && reconciles == previous {
			return reconciles, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not idle after %s: %v queued, %v reconciling, %v reconciles", op.name, timeout, queued, active, reconciles)
		}
		previous = reconciles
	}
}
