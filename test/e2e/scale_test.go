package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What the operator costs the API server and its own memory, counted from
// its own metrics: requests by method (client-go's rest_client_requests_total)
// and renders (cuerator_reconcile_duration_seconds{phase="render"}).

// requestsByMethod sums the process's API requests by HTTP method.
func requestsByMethod(t testing.TB, op *operatorProcess) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range op.scrape(t)["rest_client_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// scaleMemcacheds runs the operator binary on the Memcached kind moved to a
// group of its own, in one namespace, and creates n Memcacheds there.
type scaleRun struct {
	t          *testing.T
	bin        string
	templates  string
	group      string
	ns         string
	controller string
	args       []string
}

func newScaleRun(t *testing.T, name string, extra ...string) *scaleRun {
	bin := buildCuerator(t)
	k := restartKinds["memcached"]
	group := name + restartGroupSuffix
	templates, err := movedKindTemplates(t.TempDir(), k.dir, k.group, group)
	if err != nil {
		t.Fatal(err)
	}
	installTemplateCRD(t, bin, templates, k.plural+"."+group)
	ns := namespace(t, name)
	return &scaleRun{
		t: t, bin: bin, templates: templates, group: group, ns: ns,
		controller: "memcached." + group,
		args:       append([]string{"--templates", templates, "--watch-namespace", ns, "--zap-log-level=info"}, extra...),
	}
}

func (s *scaleRun) start(name string) *operatorProcess {
	return startOperator(s.t, s.bin, name, s.args...)
}

func (s *scaleRun) createReady(op *operatorProcess, n int) {
	t := s.t
	cfg := rest.CopyConfig(testCluster.Config)
	api, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := restartKinds["memcached"]
	if err := restartCreate(api, k, s.group, s.ns, n); err != nil {
		t.Fatal(err)
	}
	if err := restartWaitReady(t, api, op, k, s.group, s.ns, n, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := restartWaitIdle(t, op, s.controller, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// versions returns the resourceVersion of every Memcached and the
// generation of every Deployment in the namespace, by kind/name.
func (s *scaleRun) versions() map[string]string {
	out := map[string]string{}
	for _, what := range []struct{ resource, field string }{
		{"memcacheds." + s.group, "{.metadata.resourceVersion}"},
		{"deployments", "{.metadata.generation}"},
	} {
		lines := kubectl(s.t, "get", what.resource, "-n", s.ns, "-o", "jsonpath={range .items[*]}{.metadata.name} "+what.field+"{\"\\n\"}{end}")
		kind := strings.SplitN(what.resource, ".", 2)[0]
		for _, line := range strings.Split(strings.TrimSpace(lines), "\n") {
			if name, v, ok := strings.Cut(line, " "); ok {
				out[strings.TrimSuffix(kind, "s")+"/"+name] = v
			}
		}
	}
	return out
}

func (s *scaleRun) renders(op *operatorProcess) float64 {
	return op.metric(s.t, "cuerator_reconcile_duration_seconds", map[string]string{"kind": s.controller, "phase": "render"})
}

// A new Memcached (one child) costs at most 4 requests: the Deployment's
// create, and the status written twice (applied, then Ready); it is
// rendered once, however many reconciles follow its rollout. A restart
// with every CR unchanged costs no request per CR; a drift made while the
// operator was down is found by the new one and corrected, at the cost of
// that child alone.
func TestRestartCostsNothingPerUnchangedChild(t *testing.T) {
	const n = 60
	s := newScaleRun(t, "scale-restart")
	first := s.start("scale-restart-first")
	start := requestsByMethod(t, first)
	startRenders := s.renders(first)
	s.createReady(first, n)
	after := requestsByMethod(t, first)
	if perCR := (s.renders(first) - startRenders) / n; perCR > 1 {
		t.Errorf("a new Memcached is rendered %.2f times on its way to Ready, want once", perCR)
	}
	writes := (after["PATCH"] - start["PATCH"]) + (after["POST"] - start["POST"]) + (after["PUT"] - start["PUT"])
	t.Logf("%d new Memcacheds: %.0f writes (%.2f per CR); requests by method before %v, after %v", n, writes, writes/n, start, after)
	if perCR := writes / n; perCR > 4 {
		t.Errorf("a new Memcached costs %.2f writes, want at most 4 (create the Deployment, status twice)", perCR)
	}
	first.kill(t)

	// While no operator runs, someone scales one child.
	const drifted = "cr-00007"
	kubectl(t, "scale", "deployment", drifted, "-n", s.ns, "--replicas=5")
	before := s.versions()

	second := s.start("scale-restart-second")
	if _, err := restartWaitIdle(t, second, s.controller, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the drift made while down corrected", func() error {
		if r := jsonpath(t, s.ns, "deployment/"+drifted, "{.spec.replicas}"); r != "1" {
			return fmt.Errorf("replicas %s", r)
		}
		return nil
	})
	got := requestsByMethod(t, second)
	t.Logf("restart with %d Ready Memcacheds, one drifted: requests by method %v", n, got)
	// Nothing but the drifted CR and its child was written to: every other
	// CR and Deployment is at the resourceVersion it had (or, for a
	// Deployment, the generation: its status moves on its own).
	for name, v := range s.versions() {
		if name == "memcached/"+drifted || name == "deployment/"+drifted {
			continue
		}
		if v != before[name] {
			t.Errorf("%s changed across the restart: %s -> %s", name, before[name], v)
		}
	}
	// The GETs are the informers' lists, discovery and the read of the
	// drifted child; the writes, the correction, its event and the drifted
	// CR's status following its pods: none per unchanged CR.
	if got["GET"] >= n/3 || got["PATCH"]+got["POST"] >= n/3 || got["PUT"] != 0 || got["DELETE"] != 0 {
		t.Errorf("restart requests %v for %d CRs: requests per unchanged CR", got, n)
	}
	msgs := kubectl(t, "get", "events", "-n", s.ns, "--field-selector=reason=Drifted", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(msgs, "cr-00007") || !strings.Contains(msgs, ".spec.replicas") {
		t.Errorf("no Drifted event names the child and field: %q", msgs)
	}
}

// A resync reconciles every CR once and renders none of them when nothing
// changed.
func TestResyncRendersNothing(t *testing.T) {
	const n = 20
	s := newScaleRun(t, "scale-resync", "--sync-period=8s")
	op := s.start("scale-resync")
	s.createReady(op, n)
	reconciles := op.metric(t, "controller_runtime_reconcile_total", map[string]string{"controller": s.controller})
	renders := s.renders(op)
	writes := requestsByMethod(t, op)
	// Two resync periods, and then some: every informer resyncs at least once.
	time.Sleep(20 * time.Second)
	if _, err := restartWaitIdle(t, op, s.controller, time.Minute); err != nil {
		t.Fatal(err)
	}
	resynced := op.metric(t, "controller_runtime_reconcile_total", map[string]string{"controller": s.controller}) - reconciles
	rendered := s.renders(op) - renders
	after := requestsByMethod(t, op)
	t.Logf("%d CRs over 20 s of an 8 s sync period: %.0f reconciles, %.0f renders, requests %v -> %v", n, resynced, rendered, writes, after)
	if resynced < n {
		t.Fatalf("%.0f reconciles: no resync happened in the window", resynced)
	}
	if resynced > 3*n {
		t.Errorf("%.0f reconciles for %d CRs over at most 3 resyncs: more than one per CR per resync", resynced, n)
	}
	if rendered != 0 {
		t.Errorf("resyncs of unchanged CRs rendered %.0f times, want 0", rendered)
	}
	for _, m := range []string{"PATCH", "POST", "PUT", "DELETE"} {
		if after[m] != writes[m] {
			t.Errorf("resyncs wrote: %s %.0f -> %.0f", m, writes[m], after[m])
		}
	}
}

// Objects of child kinds that are not cuerator's do not reach the operator:
// 800 Secrets of 96 KiB (75 MiB) in the namespace it watches leave its
// memory where it was.
func TestForeignSecretsCostNoMemory(t *testing.T) {
	bin := buildCuerator(t)
	ns := namespace(t, "scale-foreign")
	templates, err := filepath.Abs("../../schemas")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped templates: Database produces Secrets, so Secrets are watched.
	op := startOperator(t, bin, "scale-foreign", "--templates", templates, "--watch-namespace", ns, "--zap-log-level=info")
	op.waitHTTP200(t, "http://"+op.probes+"/readyz")
	base, err := memorySampleMemory(t, op)
	if err != nil {
		t.Fatal(err)
	}

	cfg := rest.CopyConfig(testCluster.Config)
	cfg.QPS, cfg.Burst = 200, 400
	api, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 96*1024)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 800; i += 8 {
				secret := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("foreign-%03d", i), Namespace: ns, Labels: map[string]string{"owner": "helm"}},
					StringData: map[string]string{"blob": payload},
				}
				if err := api.Create(context.Background(), secret); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // any watch event has arrived by now
	grown, err := memorySampleMemory(t, op)
	if err != nil {
		t.Fatal(err)
	}
	rss := mib(grown.min.rss - base.min.rss)
	heap := mib(grown.min.heapInuse - base.min.heapInuse)
	t.Logf("800 foreign Secrets (75 MiB): RSS %s -> %s, heap inuse growth %.1f MiB, RSS growth %.1f MiB", base, grown, heap, rss)
	if rss >= 25 || heap >= 25 {
		t.Errorf("the operator grew by RSS %.1f MiB, heap %.1f MiB for Secrets that are not its own; want < 25 MiB", rss, heap)
	}
}
