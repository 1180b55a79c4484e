package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/test/cluster"
)

// The fault tests serve the Widget kind under groups of their own, so that
// the in-process widget operator (startWidgets) never reconciles their CRs:
// only the `cuerator run` processes these tests start do.
const (
	killGroup    = "kill.test.cuerator.dev"
	restartGroup = "restart.test.cuerator.dev"

	faultCRs = 200
	// faultSeed makes the changes and the fault instants reproducible.
	faultSeed = 20261126
)

// widgetSpec is the part of a Widget's spec that decides its children.
type widgetSpec struct {
	Replicas   int  `json:"replicas"`
	WithConfig bool `json:"withConfig"`
	Retained   bool `json:"retained"`
	Volume     bool `json:"volume"`
}

// widgetChild is one object a Widget may produce.
type widgetChild struct {
	kind, group, name string
	// kept children outlive pruning: the prune policy Retain (the -kept
	// ConfigMap) or a claim, retained by default. engine/prune.go leaves
	// them in place, owner labels included, and drops them from the
	// inventory.
	kept bool
}

func (c widgetChild) id(ns string) string {
	return strings.Join([]string{ns, c.name, c.group, c.kind}, "_")
}

// possibleChildren lists every child a Widget named cr can have; produces
// says which of them spec produces.
func possibleChildren(cr string) []widgetChild {
	return []widgetChild{
		{kind: "Deployment", group: "apps", name: cr},
		{kind: "ConfigMap", name: cr + "-config"},
		{kind: "ConfigMap", name: cr + "-kept", kept: true},
		{kind: "PersistentVolumeClaim", name: cr + "-data", kept: true},
	}
}

func (s widgetSpec) produces(c widgetChild) bool {
	switch {
	case strings.HasSuffix(c.name, "-config"):
		return s.WithConfig
	case strings.HasSuffix(c.name, "-kept"):
		return s.Retained
	case strings.HasSuffix(c.name, "-data"):
		return s.Volume
	}
	return true
}

// TestReliabilityKillDashNine changes CRs and SIGKILLs the operator in the
// middle of the reconciles, ten times, then checks that the last operator
// converges every CR to exactly its final spec's children: no child lost,
// none leaked, and an inventory that lists exactly what the CR owns.
func TestReliabilityKillDashNine(t *testing.T) {
	f := newFaultRun(t, killGroup, "reliability-kill")
	operator := startOperator(t, f.bin, "kill-0", f.operatorArgs...)
	f.run(10, func(round int) string {
		operator.kill(t)
		operator = startOperator(t, f.bin, fmt.Sprintf("kill-%d", round), f.operatorArgs...)
		return "killed the operator"
	})
}

// TestReliabilityAPIServerKilled kills the API server in the middle of the
// reconciles and starts it again after a few seconds: the same operator
// process reconnects and converges every CR, with the same checks as the
// kill -9 test.
func TestReliabilityAPIServerKilled(t *testing.T) {
	f := newFaultRun(t, restartGroup, "reliability-apiserver")
	operator := startOperator(t, f.bin, "apiserver", f.operatorArgs...)
	rounds := 3
	if longTests() {
		rounds = 10
	}
	f.run(rounds, func(int) string {
		if err := testCluster.KillAPIServer(); err != nil {
			t.Fatal(err)
		}
		down := time.Duration(1+f.rng.Intn(4)) * time.Second
		time.Sleep(down)
		if err := testCluster.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("killed the API server for %s", down)
	})
	select {
	case <-operator.exited:
		t.Errorf("the operator exited while the API server was away: %v; %s", operator.waitErr, operator.logTail())
	default:
	}
}

// faultRun is one fault test: a fleet of Widgets of a group of their own in
// one namespace, changed round after round while a fault strikes.
type faultRun struct {
	t            *testing.T
	group, ns    string
	bin          string
	templates    string
	operatorArgs []string
	api          client.Client
	rng          *rand.Rand

	// specs is each CR's current spec; history every spec it had: a kept
	// child may outlive the spec that produced it, but nothing may produce
	// one no spec asked for.
	specs   map[string]widgetSpec
	history map[string][]widgetSpec
	// mustSurvive holds the children that must keep their identity through
	// every change: the Deployments, and kept children once created
	// (inventory id -> uid).
	mustSurvive map[string]string
	// whilePolling, if set, runs at each poll of waitSettled: what keeps the
	// operator up while the test waits.
	whilePolling func()
}

func newFaultRun(t *testing.T, group, ns string) *faultRun {
	t.Helper()
	if group == restartGroup && os.Getenv(cluster.EnvTestKubeconfig) != "" {
		t.Skip("the API server was not started by this test binary")
	}
	f := &faultRun{t: t, group: group, bin: filepath.Join(t.TempDir(), "cuerator")}
	goBuild(t, "go", "build", "-o", f.bin, "./cmd/cuerator")
	f.templates = movedWidgetTemplates(t, group)
	installTemplateCRD(t, f.bin, f.templates, "widgets."+group)
	f.ns = namespace(t, ns)
	var err error
	if f.api, err = client.New(testCluster.Config, client.Options{}); err != nil {
		t.Fatal(err)
	}
	f.operatorArgs = []string{"--templates", f.templates, "--watch-namespace", f.ns, "--backoff-min=100ms", "--backoff-max=2s"}
	f.rng = rand.New(rand.NewSource(faultSeed))
	t.Logf("seed %d", faultSeed)
	return f
}

// run creates the fleet, then strikes with fault for rounds rounds of
// changes, and checks that every CR converged to exactly its final spec.
func (f *faultRun) run(rounds int, fault func(round int) string) {
	f.createFleet()
	f.storm(rounds, fault)
	f.waitConverged()
	f.check(fmt.Sprintf("%d faults", rounds))
}

// createFleet applies the first specs of faultCRs Widgets and waits for them.
func (f *faultRun) createFleet() {
	f.specs, f.history = map[string]widgetSpec{}, map[string][]widgetSpec{}
	for i := range faultCRs {
		s := widgetSpec{Replicas: i % 3, WithConfig: i%2 == 0, Retained: i%3 == 0, Volume: i%4 == 0}
		name := fmt.Sprintf("w%d", i)
		f.specs[name], f.history[name] = s, []widgetSpec{s}
	}
	f.apply(f.specs)
	f.waitConverged()
	f.mustSurvive = map[string]string{}
	for name, s := range f.specs {
		for _, c := range possibleChildren(name) {
			if c.kind == "Deployment" || c.kept && s.produces(c) {
				f.mustSurvive[c.id(f.ns)] = f.childUID(c)
			}
		}
	}
}

// storm changes a tenth to a fifth of the fleet each round and after a
// random 0–1.5 s calls fault, which says what it did.
func (f *faultRun) storm(rounds int, fault func(round int) string) {
	t := f.t
	names := sortedKeys(f.specs)
	for round := 1; round <= rounds; round++ {
		changed := map[string]widgetSpec{}
		for _, name := range pick(f.rng, names, faultCRs/10+f.rng.Intn(faultCRs/10+1)) {
			s := f.specs[name]
			switch f.rng.Intn(4) {
			case 0:
				s.WithConfig = !s.WithConfig
			case 1:
				s.Volume = !s.Volume
			case 2:
				s.Retained = !s.Retained
			default:
				s.Replicas = f.rng.Intn(4)
			}
			f.specs[name], changed[name] = s, s
			f.history[name] = append(f.history[name], s)
		}
		f.apply(changed)
		delay := time.Duration(f.rng.Int63n(int64(1500 * time.Millisecond)))
		time.Sleep(delay)
		what := fault(round)
		t.Logf("round %d: changed %d CRs, %s after %s", round, len(changed), what, delay.Round(time.Millisecond))
	}
}

// check compares every CR's live children and inventory with its final
// spec: nothing lost, nothing leaked, and an inventory that lists exactly
// what the CR owns. It logs the figures, headed by what.
func (f *faultRun) check(what string) {
	t := f.t
	t.Helper()
	var checked, losses, leaks int
	for _, name := range sortedKeys(f.specs) {
		final := f.specs[name]
		inventory := f.inventoryIDs(name)
		labelled := f.labelledChildren(name)
		var wantInventory []string
		for _, c := range possibleChildren(name) {
			checked++
			id := c.id(f.ns)
			uid := f.childUID(c)
			produced := final.produces(c)
			everProduced := slices.ContainsFunc(f.history[name], func(s widgetSpec) bool { return s.produces(c) })
			switch {
			case produced:
				wantInventory = append(wantInventory, id)
				if uid == "" {
					losses++
					t.Errorf("%s: %s %s is in the final spec but does not exist", name, c.kind, c.name)
				}
			case c.kept && everProduced:
				// Kept after pruning: may live on, labelled, out of the inventory.
				if uid != "" && !labelled[id] {
					t.Errorf("%s: kept %s %s lost its owner labels", name, c.kind, c.name)
				}
				delete(labelled, id)
			case uid != "":
				leaks++
				t.Errorf("%s: %s %s exists but the final spec does not produce it and nothing keeps it", name, c.kind, c.name)
			}
			if want, ok := f.mustSurvive[id]; ok && uid != want {
				losses++
				t.Errorf("%s: %s %s was deleted: uid %s, want %s", name, c.kind, c.name, uid, want)
			}
		}
		slices.Sort(wantInventory)
		if !slices.Equal(inventory, wantInventory) {
			t.Errorf("%s: inventory %v, want the final spec's children %v", name, inventory, wantInventory)
		}
		if owned := sortedKeys(labelled); !slices.Equal(owned, inventory) {
			t.Errorf("%s: live children with its owner labels, kept ones aside, %v; inventory %v", name, owned, inventory)
		}
	}
	// Kept children created since the start must survive what follows too.
	for name, s := range f.specs {
		for _, c := range possibleChildren(name) {
			if _, ok := f.mustSurvive[c.id(f.ns)]; !ok && c.kept && s.produces(c) {
				f.mustSurvive[c.id(f.ns)] = f.childUID(c)
			}
		}
	}
	t.Logf("figures: %s, %d CRs, %d children checked, %d losses, %d leaks", what, len(f.specs), checked, losses, leaks)
}

// movedWidgetTemplates copies the Widget template module and moves its kind
// to group. widget.cue imports its api package by module path, which stays.
func movedWidgetTemplates(t *testing.T, group string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "widgets")
	if err := os.CopyFS(dir, os.DirFS(widgetTemplates)); err != nil {
		t.Fatal(err)
	}
	apiFile := filepath.Join(dir, "widget", "api", "api.cue")
	src, err := os.ReadFile(apiFile)
	if err != nil {
		t.Fatal(err)
	}
	const from = `group:    "test.cuerator.dev"`
	if !strings.Contains(string(src), from) {
		t.Fatalf("%s no longer declares %s", apiFile, from)
	}
	moved := strings.Replace(string(src), from, `group:    "`+group+`"`, 1)
	if err := os.WriteFile(apiFile, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// apply applies the Widgets in one kubectl call, so that the changes of a
// round reach the operator together.
func (f *faultRun) apply(specs map[string]widgetSpec) {
	t := f.t
	t.Helper()
	var items []map[string]any
	for _, name := range sortedKeys(specs) {
		items = append(items, map[string]any{
			"apiVersion": f.group + "/v1",
			"kind":       "Widget",
			"metadata":   map[string]any{"name": name, "namespace": f.ns},
			"spec":       specs[name],
		})
	}
	manifest, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(manifest), "apply", "-f", "-")
}

// waitConverged waits until the last reconcile of every Widget of ns was of
// its current generation and applied and pruned without error: Ready, or
// not Ready only because pods are not (reason Progressing, set after the
// apply and the prune). Pod readiness is not what this test is about, and
// kwok's pods can lose it for good when the node lifecycle controller sees
// the node's heartbeat late on a busy machine.
func (f *faultRun) waitConverged() {
	f.t.Helper()
	f.waitSettled("every Widget reconciled at its generation", converged)
}

// converged reports whether the Widget's last reconcile was of its current
// generation and applied and pruned without error.
func converged(w unstructured.Unstructured) bool {
	reason := readyReason(w)
	return observedGeneration(w) == w.GetGeneration() && (reason == "Succeeded" || reason == "Progressing")
}

func observedGeneration(w unstructured.Unstructured) int64 {
	observed, _, _ := unstructured.NestedInt64(w.Object, "status", "observedGeneration")
	return observed
}

// waitSettled waits until settled holds for every Widget of the fleet.
func (f *faultRun) waitSettled(what string, settled func(unstructured.Unstructured) bool) {
	f.t.Helper()
	eventually(f.t, 5*time.Minute, what, func() error {
		if f.whilePolling != nil {
			f.whilePolling()
		}
		widgets, err := f.widgets()
		if err != nil {
			return err
		}
		var pending []string
		for _, w := range widgets {
			if !settled(w) {
				pending = append(pending, fmt.Sprintf("%s (generation %d, observed %d, Ready reason %q)", w.GetName(), w.GetGeneration(), observedGeneration(w), readyReason(w)))
			}
		}
		if len(widgets) != faultCRs || len(pending) > 0 {
			return fmt.Errorf("%d Widgets, %d not settled, e.g. %v", len(widgets), len(pending), pending[:min(5, len(pending))])
		}
		return nil
	})
}

func (f *faultRun) widgets() ([]unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: f.group, Version: "v1", Kind: "WidgetList"})
	if err := f.api.List(context.Background(), list, client.InNamespace(f.ns)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// readyReason returns the reason of the Ready condition: Succeeded when
// Ready is True.
func readyReason(obj unstructured.Unstructured) string { return readyField(obj, "reason") }

// readyMessage returns the message of the Ready condition.
func readyMessage(obj unstructured.Unstructured) string { return readyField(obj, "message") }

// readyField returns a field of the Ready condition, "" when there is none.
func readyField(obj unstructured.Unstructured, field string) string {
	conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return fmt.Sprint(m[field])
		}
	}
	return ""
}

func (f *faultRun) inventoryIDs(name string) []string {
	f.t.Helper()
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(schema.GroupVersionKind{Group: f.group, Version: "v1", Kind: "Widget"})
	if err := f.api.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, w); err != nil {
		f.t.Fatal(err)
	}
	entries, _, _ := unstructured.NestedSlice(w.Object, "status", "inventory")
	ids := []string{}
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["id"]))
		}
	}
	slices.Sort(ids)
	return ids
}

// labelledChildren returns the inventory ids of the live objects, of every
// kind a Widget produces, that carry the Widget's owner labels.
func (f *faultRun) labelledChildren(name string) map[string]bool {
	f.t.Helper()
	out := map[string]bool{}
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
		{Version: "v1", Kind: "ConfigMapList"},
		{Version: "v1", Kind: "PersistentVolumeClaimList"},
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		err := f.api.List(context.Background(), list, client.InNamespace(f.ns),
			client.MatchingLabels{"cuerator.dev/owner-name": name, "cuerator.dev/owner-kind": "widget." + f.group})
		if err != nil {
			f.t.Fatal(err)
		}
		for _, o := range list.Items {
			out[strings.Join([]string{f.ns, o.GetName(), gvk.Group, strings.TrimSuffix(gvk.Kind, "List")}, "_")] = true
		}
	}
	return out
}

// childUID returns the child's uid, or "" when it does not exist or is
// being deleted.
func (f *faultRun) childUID(c widgetChild) string {
	f.t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: c.group, Version: "v1", Kind: c.kind})
	err := f.api.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: c.name}, obj)
	if client.IgnoreNotFound(err) != nil {
		f.t.Fatal(err)
	}
	if err != nil || obj.GetDeletionTimestamp() != nil {
		return ""
	}
	return string(obj.GetUID())
}

// pick returns n distinct names chosen by rng.
func pick(rng *rand.Rand, names []string, n int) []string {
	shuffled := slices.Clone(names)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	return shuffled[:min(n, len(shuffled))]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
