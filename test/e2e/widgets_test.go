package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// The Widget kind (testdata/widgets) adds and drops children by spec
// switches, to exercise pruning, adoption and drift. It runs in its own
// manager, loaded as a user's --templates directory would be, and its API
// requests are counted.

const widgetTemplates = "testdata/widgets"

var (
	widgetsOnce sync.Once
	widgetsErr  error
)

// countRequests makes cfg log into recentRequests every request other
// than watches.
func countRequests(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return requestCounter{next: rt} })
	return cfg
}

type requestCounter struct{ next http.RoundTripper }

func (c requestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Query().Get("watch") != "true" {
		recentRequests.add(req.Method + " " + req.URL.Path)
	}
	return c.next.RoundTrip(req)
}

// recentRequests logs the requests counted, so that a test can count those
// about its own namespace while other tests' namespaces are torn down.
var recentRequests = &requestLog{}

type requestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *requestLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

// mark returns a position to count from.
func (l *requestLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// since returns the requests logged after mark whose path is in namespace ns.
func (l *requestLog) since(mark int, ns string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines[mark:] {
		if strings.Contains(line, "/namespaces/"+ns+"/") {
			out = append(out, line)
		}
	}
	return out
}

// startWidgets installs the Widget CRD and starts its operator once.
func startWidgets(t *testing.T) {
	t.Helper()
	widgetsOnce.Do(func() { widgetsErr = runWidgetOperator() })
	if widgetsErr != nil {
		t.Fatalf("widget operator: %v", widgetsErr)
	}
}

func runWidgetOperator() error {
	lib, err := installWidgetCRD()
	if err != nil {
		return err
	}
	op, err := startInProcess(countRequests(testCluster.Config), lib, controllers.ManagerOptions{Options: quickReconciles})
	if err != nil {
		return err
	}
	if !op.GetCache().WaitForCacheSync(context.Background()) {
		return fmt.Errorf("widget operator caches did not sync: %v", op.stop())
	}
	extraStops = append(extraStops, func() { _ = op.stop() })
	return nil
}

// installWidgetCRD installs the Widget CRD as a user would, from
// `cuerator crds --templates`, and returns the Widget template library.
func installWidgetCRD() (*render.Library, error) {
	lib, err := render.Load(os.DirFS(widgetTemplates))
	if err != nil {
		return nil, err
	}
	crds, err := crdgen.GenerateAll(lib)
	if err != nil {
		return nil, err
	}
	manifest, err := crdgen.MarshalYAML(crds)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("kubectl", "apply", "--server-side", "-f", "-")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath)
	cmd.Stdin = strings.NewReader(string(manifest))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("install widget CRD: %v: %s", err, out)
	}
	if out, err := kubectlOut(testCluster.KubeconfigPath, "wait", "--for=condition=Established", "crd/widgets.test.cuerator.dev", "--timeout=60s"); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return lib, nil
}

// applyWidget applies a Widget with the given spec lines (YAML, indented
// two spaces) through kubectl.
func applyWidget(t *testing.T, ns, name, spec string) {
	t.Helper()
	manifest := fmt.Sprintf("apiVersion: test.cuerator.dev/v1\nkind: Widget\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, ns, spec)
	kubectlIn(t, manifest, "apply", "-f", "-")
}

// exists reports whether kubectl finds the object.
func exists(t *testing.T, ns, kind, name string) bool {
	t.Helper()
	out := kubectl(t, "get", kind, name, "-n", ns, "--ignore-not-found", "-o", "name")
	return strings.TrimSpace(out) != ""
}

func jsonpath(t *testing.T, ns, object, path string) string {
	t.Helper()
	return kubectl(t, "get", object, "-n", ns, "-o", "jsonpath="+path)
}

func condition(t *testing.T, ns, object, typ string) string {
	t.Helper()
	return jsonpath(t, ns, object, fmt.Sprintf(`{.status.conditions[?(@.type=="%s")].status}/{.status.conditions[?(@.type=="%s")].reason}: {.status.conditions[?(@.type=="%s")].message}`, typ, typ, typ))
}

func waitReady(t *testing.T, ns, object string) {
	t.Helper()
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", object, "--timeout=90s")
}

func TestPruneRemovesExactlyWhatTheTemplateDrops(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-prune")
	applyWidget(t, ns, "w", "  withConfig: true\n  volume: true\n")
	eventually(t, 60*time.Second, "children created", func() error {
		for _, o := range [][2]string{{"deployment", "w"}, {"configmap", "w-config"}, {"pvc", "w-data"}} {
			if !exists(t, ns, o[0], o[1]) {
				return fmt.Errorf("%s/%s missing", o[0], o[1])
			}
		}
		return nil
	})
	waitReady(t, ns, "widget/w")

	// The template stops producing the ConfigMap and the claim: the
	// ConfigMap goes, the claim is retained (volumes are by default).
	applyWidget(t, ns, "w", "  withConfig: false\n  volume: false\n")
	eventually(t, 30*time.Second, "ConfigMap pruned", func() error {
		if exists(t, ns, "configmap", "w-config") {
			return fmt.Errorf("w-config still there")
		}
		return nil
	})
	if !exists(t, ns, "deployment", "w") {
		t.Error("the Deployment, still produced, was deleted")
	}
	if !exists(t, ns, "pvc", "w-data") {
		t.Error("the PersistentVolumeClaim was deleted; claims are retained by default")
	}
	eventually(t, 30*time.Second, "inventory lists only the Deployment", func() error {
		if inv := jsonpath(t, ns, "widget/w", "{.status.inventory[*].id}"); inv != ns+"_w_apps_Deployment" {
			return fmt.Errorf("inventory %q", inv)
		}
		return nil
	})

	// A template that fails to render removes nothing and says why.
	applyWidget(t, ns, "w", "  withConfig: true\n  mode: broken\n")
	eventually(t, 30*time.Second, "Stalled on the template error", func() error {
		if c := condition(t, ns, "widget/w", "Stalled"); !strings.HasPrefix(c, "True/TemplateError") || !strings.Contains(c, "spec.replicas") {
			return fmt.Errorf("Stalled condition %q", c)
		}
		return nil
	})
	if !exists(t, ns, "deployment", "w") {
		t.Error("a failed render deleted the Deployment")
	}
	if exists(t, ns, "configmap", "w-config") {
		t.Error("a failed render applied part of the graph")
	}

	// Fixed again: the ConfigMap comes back and the CR is Ready.
	applyWidget(t, ns, "w", "  withConfig: true\n")
	eventually(t, 30*time.Second, "ConfigMap back", func() error {
		if !exists(t, ns, "configmap", "w-config") {
			return fmt.Errorf("w-config missing")
		}
		return nil
	})
	waitReady(t, ns, "widget/w")
}

func TestAdoptionGuard(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-adopt")
	// Someone created an object with the name a child would take.
	kubectl(t, "create", "configmap", "w-config", "-n", ns, "--from-literal=owner=someone-else")

	applyWidget(t, ns, "w", "  withConfig: true\n")
	eventually(t, 30*time.Second, "adoption refused", func() error {
		c := condition(t, ns, "widget/w", "Stalled")
		if !strings.HasPrefix(c, "True/AdoptionRefused") || !strings.Contains(c, "ConfigMap/"+ns+"/w-config") || !strings.Contains(c, "kubectl") {
			return fmt.Errorf("Stalled condition %q", c)
		}
		return nil
	})
	events := kubectl(t, "get", "events", "-n", ns, "--field-selector=reason=AdoptionRefused", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(events, "w-config") {
		t.Errorf("no AdoptionRefused event names w-config: %q", events)
	}
	if data := jsonpath(t, ns, "configmap/w-config", "{.data}"); data != `{"owner":"someone-else"}` {
		t.Errorf("the unowned ConfigMap was modified: %s", data)
	}
	if refs := jsonpath(t, ns, "configmap/w-config", "{.metadata.ownerReferences}"); refs != "" {
		t.Errorf("the unowned ConfigMap got ownerReferences: %s", refs)
	}
	if !exists(t, ns, "deployment", "w") {
		t.Error("the other children were not applied")
	}

	kubectl(t, "annotate", "configmap", "w-config", "-n", ns, "cuerator.dev/adopt=true")
	eventually(t, 30*time.Second, "ConfigMap adopted", func() error {
		if g := jsonpath(t, ns, "configmap/w-config", "{.data.greeting} {.metadata.ownerReferences[0].kind}"); g != "hello Widget" {
			return fmt.Errorf("ConfigMap greeting/owner %q", g)
		}
		return nil
	})
	waitReady(t, ns, "widget/w")
}

func TestDeletingACRKeepsRetainedChildrenAndClaims(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-delete")
	applyWidget(t, ns, "w", "  withConfig: true\n  retained: true\n  volume: true\n")
	waitReady(t, ns, "widget/w")
	kubectl(t, "delete", "widget", "w", "-n", ns, "--timeout=60s")
	eventually(t, 90*time.Second, "owned children garbage collected", func() error {
		if exists(t, ns, "deployment", "w") || exists(t, ns, "configmap", "w-config") {
			return fmt.Errorf("Deployment or w-config still there")
		}
		return nil
	})
	if !exists(t, ns, "configmap", "w-kept") {
		t.Error("the Retain ConfigMap was deleted with its CR")
	}
	if !exists(t, ns, "pvc", "w-data") {
		t.Error("the claim was deleted with its CR")
	}
}

// A reconcile in which neither the CR nor a child changed issues no API
// request: children and status are compared in the informer cache.
func TestNoopReconcileIssuesNoRequests(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-noop")
	applyWidget(t, ns, "w", "  withConfig: true\n  retained: true\n  volume: true\n")
	waitReady(t, ns, "widget/w")
	// Let the last status write and its echo settle.
	time.Sleep(2 * time.Second)

	before := reconciles(t, "widget.test.cuerator.dev")
	mark := recentRequests.mark()
	// A label change passes the CR predicate and changes no child.
	kubectl(t, "label", "widget", "w", "-n", ns, "touched=yes")
	eventually(t, 30*time.Second, "a reconcile ran", func() error {
		if n := reconciles(t, "widget.test.cuerator.dev"); n <= before {
			return fmt.Errorf("reconciles %v -> %v", before, n)
		}
		return nil
	})
	// Other tests' CRs reconcile too; give this one's reconcile time to
	// finish before counting.
	time.Sleep(time.Second)
	if reqs := recentRequests.since(mark, ns); len(reqs) != 0 {
		t.Errorf("a no-op reconcile of a CR with 4 children issued %d API requests, want 0: %v", len(reqs), reqs)
	}
}

// reconciles reads controller-runtime's reconcile counter for a controller.
func reconciles(t testing.TB, controller string) float64 {
	return counterTotal(t, "controller_runtime_reconcile_total", controller)
}

// counterTotal sums a counter of this process's controller-runtime metrics
// over the controller given, or over every controller when it is empty.
func counterTotal(t testing.TB, name, controller string) float64 {
	t.Helper()
	want := map[string]string{}
	if controller != "" {
		want["controller"] = controller
	}
	return sumMetric(inProcessMetrics(t), name, want)
}

// A change to an immutable field is reported with the field's name; the
// child is recreated only when the template allows it.
func TestImmutableFieldChange(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-immutable")
	applyWidget(t, ns, "w", "  withConfig: false\n")
	waitReady(t, ns, "widget/w")
	uid := jsonpath(t, ns, "deployment/w", "{.metadata.uid}")

	applyWidget(t, ns, "w", "  withConfig: false\n  track: canary\n")
	eventually(t, 30*time.Second, "the immutable selector reported", func() error {
		if c := condition(t, ns, "widget/w", "Ready"); !strings.HasPrefix(c, "False/ApplyFailed") || !strings.Contains(c, "spec.selector") || !strings.Contains(c, "immutable") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	if got := jsonpath(t, ns, "deployment/w", "{.metadata.uid} {.spec.selector.matchLabels.track}"); got != uid+" stable" {
		t.Errorf("the Deployment changed without the recreate policy: %s", got)
	}

	// The recreate annotation goes on first (a mutable change), then the
	// selector change recreates the Deployment.
	applyWidget(t, ns, "w", "  withConfig: false\n  recreate: true\n")
	eventually(t, 30*time.Second, "recreate annotation applied", func() error {
		if a := jsonpath(t, ns, "deployment/w", `{.metadata.annotations.cuerator\.dev/recreate}`); a != "true" {
			return fmt.Errorf("annotation %q", a)
		}
		return nil
	})
	applyWidget(t, ns, "w", "  withConfig: false\n  recreate: true\n  track: canary\n")
	eventually(t, 60*time.Second, "Deployment recreated with the new selector", func() error {
		// Between the delete and the create there is no Deployment.
		got, err := kubectlOut(testCluster.KubeconfigPath, "get", "deployment/w", "-n", ns, "-o", "jsonpath={.metadata.uid} {.spec.selector.matchLabels.track}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, got)
		}
		if strings.HasPrefix(got, uid) || !strings.HasSuffix(got, " canary") {
			return fmt.Errorf("uid/track %q", got)
		}
		return nil
	})
	waitReady(t, ns, "widget/w")
}

// A competing field manager that keeps changing a child is corrected each
// time, and the operator does not loop: once the fight stops, it sends no
// request about the CR at all.
// maxRequestsPerCorrection bounds what one outside edit may cost.
const maxRequestsPerCorrection = 14

func TestCompetingManagerIsCorrectedWithoutAHotLoop(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "widget-compete")
	applyWidget(t, ns, "w", "  replicas: 2\n  withConfig: false\n")
	waitReady(t, ns, "widget/w")

	rounds := 5
	if longTests() {
		rounds = 50
	}
	fight := recentRequests.mark()
	for round := range rounds {
		kubectl(t, "scale", "deployment", "w", "-n", ns, fmt.Sprintf("--replicas=%d", 5+round))
		eventually(t, 30*time.Second, fmt.Sprintf("round %d corrected", round), func() error {
			if r := jsonpath(t, ns, "deployment/w", "{.spec.replicas}"); r != "2" {
				return fmt.Errorf("replicas %s", r)
			}
			return nil
		})
	}
	waitReady(t, ns, "widget/w")
	time.Sleep(2 * time.Second) // let the last correction's echoes settle
	// A correction costs about ten requests, however fast the fight goes:
	// the drifted Deployment read (GET), a dry-run and an apply (2 PATCH),
	// the stored result read back (GET), two events, and a status write for
	// Drifted and for each step of the Deployment scaling back (PATCH).
	reqs := recentRequests.since(fight, ns)
	t.Logf("%d requests for %d corrections: %v", len(reqs), rounds, reqs)
	if perRound := float64(len(reqs)) / float64(rounds); perRound > maxRequestsPerCorrection {
		t.Errorf("%.1f requests per correction, want at most %d: a hot loop", perRound, maxRequestsPerCorrection)
	}
	mark := recentRequests.mark()
	time.Sleep(5 * time.Second)
	if reqs := recentRequests.since(mark, ns); len(reqs) != 0 {
		t.Errorf("%d requests about a quiet CR after the fight: %v", len(reqs), reqs)
	}
}
