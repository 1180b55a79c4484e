package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/e2e/typedwebapp"
)

const (
	// convergenceWorkers is the concurrency of every approach: the
	// operators' MaxConcurrentReconciles and the ceiling's apply loop.
	convergenceWorkers = 4
	// convergencePollInterval is how often the readiness of all CRs (or
	// Deployments) is read, from the bench's own watches.
	convergencePollInterval = 200 * time.Millisecond
	// convergenceFieldManager applies the ceiling's objects.
	convergenceFieldManager = "convergence-ceiling"
)

// convergenceRuns counts the runs of BenchmarkConvergence in this process.
var convergenceRuns atomic.Int32

var convergenceWebAppGVK = schema.GroupVersionKind{Group: "apps.example.com", Version: "v1alpha1", Kind: "WebApp"}

// BenchmarkConvergence measures, side by side on one cluster, how long N
// WebApp CRs (3 children each) take from being applied to all Ready:
//   - cuerator: the operator TestMain runs reconciles apps.example.com
//     WebApps;
//   - typed: a hand-written controller-runtime operator for the same kind
//     (package typedwebapp), serving the WebApp CRD under a group of its own;
//   - ceiling: no CR and no operator; the same children, rendered by the
//     engine beforehand, server-side applied by a loop of 4 workers.
//
// Each reports seconds until every child was written and until every CR
// (for the ceiling, every Deployment) was Ready, and API requests per CR by
// verb; the last sub-benchmark reports the ratios cuerator/typed and
// cuerator/ceiling. N comes from CUERATOR_BENCH_WEBAPPS (comma list,
// default 100). Each approach runs in a namespace of its own, deleted
// before the next approach starts.
//
// Run: go test ./test/e2e -run '^$' -bench Convergence -benchtime 1x -timeout 60m
func BenchmarkConvergence(b *testing.B) {
	counts, err := convergenceCounts(os.Getenv("CUERATOR_BENCH_WEBAPPS"))
	if err != nil {
		b.Fatal(err)
	}
	lib, err := render.Load(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	kind := lib.Kind(convergenceWebAppGVK)
	if kind == nil {
		b.Fatalf("the template library has no %s", convergenceWebAppGVK)
	}
	if err := installTypedWebAppCRD(kind); err != nil {
		b.Fatal(err)
	}
	// Readiness is read, and CRs are created, without counting requests.
	uncounted, err := convergenceClient(b)
	if err != nil {
		b.Fatal(err)
	}
	typedGVK := typedwebapp.GroupVersion.WithKind("WebApp")
	// Namespaces of an earlier run (-count 2) may still be terminating.
	run := convergenceRuns.Add(1)
	for _, n := range counts {
		b.Run(fmt.Sprintf("webapps=%d", n), func(b *testing.B) {
			approaches := []struct {
				name string
				run  func(b *testing.B, ns string) convergenceResult
			}{
				{"cuerator", func(b *testing.B, ns string) convergenceResult {
					return convergeWebApps(b, uncounted, convergenceWebAppGVK, ns, n, "webapp.apps.example.com", true)
				}},
				{"typed", func(b *testing.B, ns string) convergenceResult {
					// Running during its own run alone: its informers watch
					// every Deployment, Service and Ingress of the cluster,
					// and would decode cuerator's and the ceiling's children
					// while those are timed (cuerator's watch only objects
					// with its owner labels). Started, its caches synced,
					// before the clock.
					stop, err := startTypedWebAppOperator()
					if err != nil {
						b.Fatal(err)
					}
					defer stop(b)
					return convergeWebApps(b, uncounted, typedGVK, ns, n, "webapp", false)
				}},
				{"ceiling", func(b *testing.B, ns string) convergenceResult {
					return convergeCeiling(b, uncounted, kind, ns, n)
				}},
			}
			results := map[string]convergenceResult{}
			for _, a := range approaches {
				b.Run(a.name, func(b *testing.B) {
					b.StopTimer() // each run times only its convergence
					var total convergenceResult
					for i := range b.N {
						ns := fmt.Sprintf("convergence-%d-%s-%d-%d", run, a.name, n, i)
						if err := createConvergenceNamespace(b, ns); err != nil {
							b.Fatal(err)
						}
						loadBefore := convergenceLoadAverage()
						total.add(a.run(b, ns))
						// Other processes share the machine: say how busy it was.
						b.Logf("load average before: %s, after: %s", loadBefore, convergenceLoadAverage())
					}
					results[a.name] = total.report(b, n*b.N)
				})
			}
			b.Run("ratios", func(b *testing.B) { reportConvergenceRatios(b, results) })
		})
	}
}

func convergenceCounts(env string) ([]int, error) {
	if env == "" {
		env = "100"
	}
	var counts []int
	for field := range strings.SplitSeq(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("CUERATOR_BENCH_WEBAPPS=%q: want a comma list of positive counts", env)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// installTypedWebAppCRD installs the WebApp CRD that cuerator generates,
// with its group changed to the typed operator's. Renaming the CRD object is
// enough: the typed operator uses no template.
func installTypedWebAppCRD(kind *render.Kind) error {
	crd, err := crdgen.Generate(kind)
	if err != nil {
		return fmt.Errorf("WebApp CRD: %w", err)
	}
	crd.Spec.Group = typedwebapp.GroupVersion.Group
	crd.Name = crd.Spec.Names.Plural + "." + crd.Spec.Group
	manifest, err := crdgen.MarshalYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
	if err != nil {
		return err
	}
	if out, err := kubectlInput(string(manifest), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("install %s: %w: %s", crd.Name, err, out)
	}
	// The CRD stays, as deploy/crds' do: the namespaces' deletion removes
	// the typed WebApps, and a later run (-count 2) applies it again.
	if out, err := kubectlOut(testCluster.KubeconfigPath, "wait", "--for=condition=Established", "crd/"+crd.Name, "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for %s: %w: %s", crd.Name, err, out)
	}
	return nil
}

// startTypedWebAppOperator runs the typed operator in its own manager, with
// the cuerator operator's concurrency and client limits, until stop is
// called.
func startTypedWebAppOperator() (stop func(testing.TB), err error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := typedwebapp.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(countRequests(testCluster.Config), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each run registers the controller again in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("typed operator: %w", err)
	}
	r := &typedwebapp.Reconciler{Client: mgr.GetClient(), Scheme: scheme}
	if err := r.SetupWithManager(mgr, convergenceWorkers); err != nil {
		return nil, fmt.Errorf("typed operator: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop = func(t testing.TB) {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("typed operator: %v", err)
		}
	}
	select {
	case <-mgr.Elected():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("typed operator: %w", err)
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		<-done
		return nil, fmt.Errorf("typed operator: caches did not sync")
	}
	return stop, nil
}

// createConvergenceNamespace creates ns and deletes it when the approach's
// sub-benchmark ends, waiting until it is gone: otherwise the next approach
// would be timed while the API server and the garbage collector delete
// thousands of this one's objects.
func createConvergenceNamespace(b *testing.B, ns string) error {
	if out, err := kubectlOut(testCluster.KubeconfigPath, "create", "namespace", ns); err != nil {
		return fmt.Errorf("create namespace %s: %w: %s", ns, err, out)
	}
	b.Cleanup(func() {
		// Thousands of objects take minutes to go on a loaded machine:
		// longer than kubectlOut allows a command.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", "delete", "namespace", ns, "--timeout=14m")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
	})
	return nil
}

// convergenceLoadAverage is the machine's 1, 5 and 15 minute load average.
func convergenceLoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(b))
	return strings.Join(fields[:min(3, len(fields))], " ")
}

// convergenceResult is one approach's run, or the sum of several.
type convergenceResult struct {
	applied, ready time.Duration
	// requests are the counted requests about the approach's namespace.
	requests []string
	// reconciles and renders are the operator's, from this process's
	// metrics; renders only for cuerator.
	reconciles, renders float64
	// cpu is the CPU time spent while it was timed, by whom (busyCPU).
	cpu map[string]time.Duration
}

// busyCPU reads the CPU time (user and system) spent so far by the API
// server, etcd, the cluster's other components (controller-manager,
// scheduler, kwok), this process (the operators in it, the bench's own
// workers and watches) and its render workers; one it cannot read is left
// out. The cluster's processes are this process's children when it
// started the cluster: each is counted under its own name only.
func busyCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	cluster := map[int]bool{}
	for name, pid := range testCluster.PIDs() {
		cluster[pid] = true
		d, _, ok := processCPU(pid)
		if !ok {
			continue
		}
		switch name {
		case "kube-apiserver", "etcd":
			out[name] = d
		default:
			out["cluster-others"] += d
		}
	}
	self := os.Getpid()
	if d, _, ok := processCPU(self); ok {
		out["bench-process"] = d
	}
	// Render workers are this process's children that run its executable.
	// An exited one's time is in this process's counters of children
	// waited for (as is kubectl's, which runs before and after the clock,
	// never during it); a live one's is read from it.
	if d, ok := reapedCPU(self); ok {
		out["render-workers"] = d
	}
	exe, err := os.Executable()
	if err != nil {
		return out
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || cluster[pid] {
			continue
		}
		cd, ppid, ok := processCPU(pid)
		if !ok || ppid != self {
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && target == exe {
			out["render-workers"] += cd
		}
	}
	return out
}

// processCPU reads a process's CPU time and parent from /proc/<pid>/stat.
func processCPU(pid int) (cpu time.Duration, ppid int, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The fields after the command (which may hold spaces), from state on:
	// ppid is the 2nd, utime and stime the 12th and 13th, in clock ticks
	// (100 a second on Linux).
	_, after, found := strings.Cut(string(raw), ") ")
	fields := strings.Fields(after)
	if !found || len(fields) < 13 {
		return 0, 0, false
	}
	ppid, err0 := strconv.Atoi(fields[1])
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, ppid, true
}

// reapedCPU reads the CPU time of a process's children that exited and
// were waited for (cutime and cstime, the 14th and 15th fields after the
// command).
func reapedCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	_, after, found := strings.Cut(string(raw), ") ")
	fields := strings.Fields(after)
	if !found || len(fields) < 15 {
		return 0, false
	}
	cutime, err1 := strconv.ParseInt(fields[13], 10, 64)
	cstime, err2 := strconv.ParseInt(fields[14], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(cutime+cstime) * 10 * time.Millisecond, true
}

func cpuSince(before map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, now := range busyCPU() {
		out[name] = now - before[name] // a process that was not there had spent none
	}
	return out
}

func (r *convergenceResult) add(o convergenceResult) {
	r.applied += o.applied
	r.ready += o.ready
	r.requests = append(r.requests, o.requests...)
	r.reconciles += o.reconciles
	r.renders += o.renders
	for name, d := range o.cpu {
		if r.cpu == nil {
			r.cpu = map[string]time.Duration{}
		}
		r.cpu[name] += d
	}
}

// report reports r, the sum of runs that created crs CRs in all, per run
// and per CR, and returns the per-run times.
func (r convergenceResult) report(b *testing.B, crs int) convergenceResult {
	runs := time.Duration(b.N)
	perRun := convergenceResult{applied: r.applied / runs, ready: r.ready / runs}
	b.ReportMetric(perRun.applied.Seconds(), "s-applied")
	b.ReportMetric(perRun.ready.Seconds(), "s-ready")
	b.ReportMetric(float64(len(r.requests))/float64(crs), "requests/CR")
	if r.reconciles > 0 {
		b.ReportMetric(r.reconciles/float64(crs), "reconciles/CR")
	}
	if r.renders > 0 {
		b.ReportMetric(r.renders/float64(crs), "renders/CR")
	}
	for name, d := range r.cpu {
		b.ReportMetric(float64(d.Milliseconds())/float64(crs), name+"-cpu-ms/CR")
	}
	byVerb := map[string]int{}
	byResource := map[string]int{}
	for _, line := range r.requests {
		verb, path, _ := strings.Cut(line, " ")
		byVerb[verb]++
		byResource[verb+" "+convergenceResource(path)]++
	}
	for verb, count := range byVerb {
		b.ReportMetric(float64(count)/float64(crs), verb+"/CR")
	}
	var lines []string
	for what, count := range byResource {
		lines = append(lines, fmt.Sprintf("%-32s %6.2f", what, float64(count)/float64(crs)))
	}
	slices.Sort(lines)
	b.Logf("requests per CR:\n%s", strings.Join(lines, "\n"))
	return perRun
}

// convergenceResource names what a namespaced request path is about:
// its resource, and subresource if any.
func convergenceResource(path string) string {
	_, rest, ok := strings.Cut(path, "/namespaces/")
	if !ok {
		return path
	}
	parts := strings.Split(rest, "/") // namespace, resource, name, subresource
	switch {
	case len(parts) >= 4:
		return parts[1] + "/" + parts[3]
	case len(parts) >= 2:
		return parts[1]
	}
	return path
}

func reportConvergenceRatios(b *testing.B, results map[string]convergenceResult) {
	cuerator, typed, ceiling := results["cuerator"], results["typed"], results["ceiling"]
	if cuerator.ready == 0 || typed.ready == 0 || ceiling.ready == 0 {
		b.Skip("an approach did not finish")
	}
	ratio := func(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }
	b.ReportMetric(ratio(cuerator.applied, typed.applied), "cuerator/typed-applied")
	b.ReportMetric(ratio(cuerator.ready, typed.ready), "cuerator/typed-ready")
	b.ReportMetric(ratio(cuerator.applied, ceiling.applied), "cuerator/ceiling-applied")
	b.ReportMetric(ratio(cuerator.ready, ceiling.ready), "cuerator/ceiling-ready")
}

// convergenceWebApp is WebApp number i of gvk: one replica of nginx.
func convergenceWebApp(gvk schema.GroupVersionKind, ns string, i int) *unstructured.Unstructured {
	name := fmt.Sprintf("webapp-%04d", i)
	cr := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(1),
			"image":    "nginx:alpine",
			"domain":   name + ".convergence.example.com",
		},
	}}
	cr.SetGroupVersionKind(gvk)
	return cr
}

// convergeWebApps creates n WebApps of gvk in ns, for the operator that
// serves gvk (its controller named controller; renders counted when it is
// cuerator's), and times until every child exists and every CR is Ready at
// its generation.
func convergeWebApps(b *testing.B, api client.Client, gvk schema.GroupVersionKind, ns string, n int, controller string, renders bool) convergenceResult {
	ctx := context.Background()
	mark := recentRequests.mark()
	count := func() (reconciles, rendered float64) {
		fams := inProcessMetrics(b)
		reconciles = sumMetric(fams, "controller_runtime_reconcile_total", map[string]string{"controller": controller})
		if renders {
			rendered = sumMetric(fams, "cuerator_reconcile_duration_seconds", map[string]string{"kind": controller, "phase": "render"})
		}
		return reconciles, rendered
	}
	reconcilesBefore, rendersBefore := count()
	cpuBefore := busyCPU()
	b.StartTimer()
	start := time.Now()
	err := convergenceParallel(n, func(i int) error {
		return api.Create(ctx, convergenceWebApp(gvk, ns, i))
	})
	if err != nil {
		b.Fatalf("create WebApps: %v", err)
	}
	applied, ready := waitConvergence(b, start, n, func() (bool, string, error) {
		return convergenceChildrenExist(ctx, api, ns, n)
	}, func() (bool, string, error) {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := api.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return false, "", err
		}
		readyCRs := 0
		for _, cr := range list.Items {
			if convergenceCRReady(cr) {
				readyCRs++
			}
		}
		return readyCRs == n, fmt.Sprintf("%d of %d WebApps Ready", readyCRs, n), nil
	})
	b.StopTimer()
	cpu := cpuSince(cpuBefore)
	reconcilesAfter, rendersAfter := count()
	return convergenceResult{applied: applied, ready: ready, requests: recentRequests.since(mark, ns),
		reconciles: reconcilesAfter - reconcilesBefore, renders: rendersAfter - rendersBefore, cpu: cpu}
}

// inProcessMetrics gathers this process's controller-runtime metrics: the
// in-process operators' (cuerator's, the typed one's).
func inProcessMetrics(b testing.TB) map[string]*dto.MetricFamily {
	b.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		out[f.GetName()] = f
	}
	return out
}

// convergenceCRReady reports whether cr's status is of its generation and
// its Ready condition True.
func convergenceCRReady(cr unstructured.Unstructured) bool {
	observed, _, _ := unstructured.NestedInt64(cr.Object, "status", "observedGeneration")
	if observed != cr.GetGeneration() {
		return false
	}
	conditions, _, _ := unstructured.NestedSlice(cr.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

// convergenceChildrenExist reports whether ns holds n Deployments, Services
// and Ingresses. Metadata-only lists keep the polling light.
func convergenceChildrenExist(ctx context.Context, api client.Client, ns string, n int) (bool, string, error) {
	var counts []string
	all := true
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
		{Version: "v1", Kind: "ServiceList"},
		{Group: "networking.k8s.io", Version: "v1", Kind: "IngressList"},
	} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk)
		if err := api.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return false, "", err
		}
		all = all && len(list.Items) == n
		counts = append(counts, fmt.Sprintf("%d %ss", len(list.Items), strings.TrimSuffix(gvk.Kind, "List")))
	}
	return all, strings.Join(counts, ", "), nil
}

// convergeCeiling renders the children of n WebApps, then times a loop of
// server-side applies of them, one CR's children after the other in each of
// 4 workers, and until every Deployment is available. There is no CR, so
// the children carry no ownerReference: the garbage collector would delete
// children of a missing owner.
func convergeCeiling(b *testing.B, api client.Client, kind *render.Kind, ns string, n int) convergenceResult {
	ctx := context.Background()
	children := make([][]*unstructured.Unstructured, n)
	for i := range n {
		cr := convergenceWebApp(convergenceWebAppGVK, ns, i)
		cr.SetUID(types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)))
		rendered, err := kind.Render(cr)
		if err != nil {
			b.Fatalf("render %s: %v", cr.GetName(), err)
		}
		for _, obj := range rendered.Objects {
			obj.SetOwnerReferences(nil)
			// Without cuerator's owner labels, which would bring them into
			// the in-process operator's watches while the ceiling is timed.
			labels := obj.GetLabels()
			for _, l := range []string{child.LabelManagedBy, child.LabelOwnerName, child.LabelOwnerKind} {
				delete(labels, l)
			}
			obj.SetLabels(labels)
		}
		children[i] = rendered.Objects
	}
	applier, err := client.New(countRequests(testCluster.Config), client.Options{})
	if err != nil {
		b.Fatal(err)
	}

	mark := recentRequests.mark()
	cpuBefore := busyCPU()
	b.StartTimer()
	start := time.Now()
	err = convergenceParallel(n, func(i int) error {
		for _, obj := range children[i] {
			err := applier.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
				client.FieldOwner(convergenceFieldManager), client.ForceOwnership)
			if err != nil {
				return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	applied := time.Since(start)
	_, ready := waitConvergence(b, start, n, nil, func() (bool, string, error) {
		list := &appsv1.DeploymentList{}
		if err := api.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return false, "", err
		}
		available := 0
		for i := range list.Items {
			if typedwebapp.DeploymentAvailable(&list.Items[i]) {
				available++
			}
		}
		return available == n, fmt.Sprintf("%d of %d Deployments available", available, n), nil
	})
	b.StopTimer()
	return convergenceResult{applied: applied, ready: ready, requests: recentRequests.since(mark, ns), cpu: cpuSince(cpuBefore)}
}

// convergenceClient writes to the API server and reads from a cache that
// watches what the bench waits for (WebApps of both groups, Deployments,
// the metadata of Services and Ingresses): listing 1,000 objects every
// poll would load the API server, and this process, more than the
// approaches it times, and the slower approach the more.
func convergenceClient(b *testing.B) (client.Client, error) {
	watched, err := cache.New(testCluster.Config, cache.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = watched.Start(ctx) }()
	if !watched.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the bench's cache did not start")
	}
	c, err := client.New(testCluster.Config, client.Options{Scheme: clientgoscheme.Scheme,
		Cache: &client.CacheOptions{Reader: watched, Unstructured: true}})
	if err != nil {
		return nil, err
	}
	// Start every watch before any clock: a List waits for its informer's
	// first sync.
	var lists []client.ObjectList
	for _, gvk := range []schema.GroupVersionKind{convergenceWebAppGVK, typedwebapp.GroupVersion.WithKind("WebApp")} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		lists = append(lists, l)
	}
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "ServiceList"},
		{Group: "networking.k8s.io", Version: "v1", Kind: "IngressList"},
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
	} {
		l := &metav1.PartialObjectMetadataList{}
		l.SetGroupVersionKind(gvk)
		lists = append(lists, l)
	}
	lists = append(lists, &appsv1.DeploymentList{})
	syncCtx, cancelSync := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelSync()
	for _, l := range lists {
		if err := c.List(syncCtx, l); err != nil {
			return nil, fmt.Errorf("start the bench's watch of %T: %w", l, err)
		}
	}
	return c, nil
}

// convergenceParallel calls do for 0..n-1 from convergenceWorkers
// goroutines, and returns the first error.
func convergenceParallel(n int, do func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range convergenceWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// waitConvergence polls every convergencePollInterval: applied (when not
// nil) until it is true, and ready until it is true, for at most 5 minutes
// plus 300 ms per CR. It returns how long after start each was first seen
// true; a nil applied counts as true when ready is.
func waitConvergence(b *testing.B, start time.Time, crs int, applied, ready func() (bool, string, error)) (appliedAfter, readyAfter time.Duration) {
	timeout := 5*time.Minute + time.Duration(crs)*300*time.Millisecond
	childrenProgress := "all children written"
	for {
		if applied != nil && appliedAfter == 0 {
			done, progress, err := applied()
			if err != nil {
				b.Fatal(err)
			}
			childrenProgress = progress
			if done {
				appliedAfter = time.Since(start)
			}
		}
		done, progress, err := ready()
		if err != nil {
			b.Fatal(err)
		}
		if done {
			readyAfter = time.Since(start)
			if appliedAfter == 0 {
				appliedAfter = readyAfter
			}
			return appliedAfter, readyAfter
		}
		if time.Since(start) > timeout {
			b.Fatalf("not converged within %s: %s; %s", timeout, progress, childrenProgress)
		}
		time.Sleep(convergencePollInterval)
	}
}
