package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The operator tests run the real binary, `cuerator run`, as separate
// processes, the way it runs in production: leader election, sharding by
// label selector, metrics and probes. They serve Note, a kind of their own
// (testdata/ops), so that the operator TestMain runs in this process, which
// reconciles the built-in kinds everywhere, never competes with them.
const (
	opsTemplates   = "testdata/ops"
	noteCRD        = "notes.ops.test.cuerator.dev"
	noteAPIVersion = "ops.test.cuerator.dev/v1"
	// noteKind is the Note controller's name: the controller label of
	// controller-runtime's metrics and the kind label of cuerator's.
	noteKind = "note.ops.test.cuerator.dev"

	operatorTimeout = 2 * time.Minute
)

func TestOperator(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cuerator")
	goBuild(t, "go", "build", "-o", bin, "./cmd/cuerator")
	templates, err := filepath.Abs(opsTemplates)
	if err != nil {
		t.Fatal(err)
	}
	installTemplateCRD(t, bin, templates, noteCRD)

	t.Run("LeaderElection", func(t *testing.T) { testLeaderElection(t, bin, templates) })
	t.Run("Sharding", func(t *testing.T) { testSharding(t, bin, templates) })
	t.Run("ShardsWithLeaderElection", func(t *testing.T) { testShardsWithLeaderElection(t, bin, templates) })
	t.Run("Metrics", func(t *testing.T) { testMetrics(t, bin, templates) })
	t.Run("MetricsSecureByDefault", func(t *testing.T) { testMetricsSecureByDefault(t, bin, templates) })
	t.Run("Probes", func(t *testing.T) { testProbes(t, bin, templates) })
	t.Run("StaticBinary", func(t *testing.T) { testStaticBinary(t, templates) })
}

// Two replicas share one Lease: one reconciles, the other waits, and takes
// over when the leader dies without releasing the Lease.
func testLeaderElection(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-leader")
	const lease = "cuerator-e2e-leader"
	args := []string{"--templates", templates, "--watch-namespace", ns,
		"--leader-elect", "--leader-election-namespace", ns, "--leader-election-id", lease}
	replicas := []*operatorProcess{startOperator(t, bin, "replica-1", args...), startOperator(t, bin, "replica-2", args...)}

	leader, standby := waitLeader(t, lease, replicas)
	holder := leaseHolder(t, ns, lease)
	t.Logf("%s leads, lease held by %s", leader.name, holder)

	applyNote(t, ns, "first", nil, map[string]any{"message": "one"})
	waitNoteCondition(t, ns, "first", "Ready")
	if !leader.reconciled(t, "first") {
		t.Errorf("leader %s did not log a reconcile of first", leader.name)
	}
	// A standby starts its controllers only once it leads: until then it
	// must have reconciled and applied nothing.
	if n := standby.reconciles(t); n > 0 {
		t.Errorf("standby %s logged %d reconciles", standby.name, n)
	}
	if n := standby.metric(t, "cuerator_reconcile_duration_seconds", map[string]string{"kind": noteKind, "phase": "apply"}); n != 0 {
		t.Errorf("standby %s applied %v times", standby.name, n)
	}
	if l, _ := waitLeader(t, lease, replicas); l != leader {
		t.Fatalf("leadership moved from %s to %s with no failure", leader.name, l.name)
	}

	// SIGKILL: the lease is not released, so the standby must wait for it
	// to expire.
	leader.kill(t)
	eventually(t, operatorTimeout, standby.name+" leads", func() error {
		standby.mustRun(t)
		if v := standby.metric(t, "leader_election_master_status", map[string]string{"name": lease}); v != 1 {
			return fmt.Errorf("leader_election_master_status = %v", v)
		}
		return nil
	})
	if h := leaseHolder(t, ns, lease); h == holder {
		t.Errorf("lease still held by %s, the killed leader", h)
	}

	applyNote(t, ns, "second", nil, map[string]any{"message": "two"})
	waitNoteCondition(t, ns, "second", "Ready")
	if !standby.reconciled(t, "second") {
		t.Errorf("new leader %s did not log a reconcile of second", standby.name)
	}
	for _, cm := range []string{"first", "second"} {
		if m := fieldManagers(t, ns, "configmap", cm); !slices.Equal(m, []string{"cuerator/Apply"}) {
			t.Errorf("configmap %s: managedFields %v, want one entry, cuerator/Apply", cm, m)
		}
	}
}

// Two processes with disjoint label selectors share the CRs out; a CR that
// matches neither is reconciled by neither.
func testSharding(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-shards")
	shardA := startOperator(t, bin, "shard-a", "--templates", templates, "--watch-namespace", ns, "--watch-label-selector", "shard=a")
	shardB := startOperator(t, bin, "shard-b", "--templates", templates, "--watch-namespace", ns, "--watch-label-selector", "shard=b")

	applyNote(t, ns, "unsharded", nil, map[string]any{"message": "nobody's"})
	applyNote(t, ns, "in-a", map[string]string{"shard": "a"}, map[string]any{"message": "a"})
	applyNote(t, ns, "in-b", map[string]string{"shard": "b"}, map[string]any{"message": "b"})
	waitNoteCondition(t, ns, "in-a", "Ready")
	waitNoteCondition(t, ns, "in-b", "Ready")

	for _, c := range []struct {
		p          *operatorProcess
		own, other string
	}{{shardA, "in-a", "in-b"}, {shardB, "in-b", "in-a"}} {
		if !c.p.reconciled(t, c.own) {
			t.Errorf("%s did not log a reconcile of %s", c.p.name, c.own)
		}
		for _, cr := range []string{c.other, "unsharded"} {
			if c.p.reconciled(t, cr) {
				t.Errorf("%s reconciled %s, outside its shard", c.p.name, cr)
			}
		}
		if v := c.p.metric(t, "controller_runtime_reconcile_total", map[string]string{"controller": noteKind}); v == 0 {
			t.Errorf("%s: controller_runtime_reconcile_total = 0", c.p.name)
		}
		if v := c.p.metric(t, "cuerator_children", map[string]string{"kind": noteKind}); v != 1 {
			t.Errorf("%s: cuerator_children = %v, want the one child of %s", c.p.name, v, c.own)
		}
	}
	// Neither shard caches it, so no event will ever come for it.
	if st := kubectl(t, "get", "note", "unsharded", "-n", ns, "-o", "jsonpath={.status}"); st != "" {
		t.Errorf("unsharded has a status: %s", st)
	}
	if out, err := kubectlOut(testCluster.KubeconfigPath, "get", "configmap", "unsharded", "-n", ns); err == nil {
		t.Errorf("unsharded has a child:\n%s", out)
	}

	// A label change moves a CR into a shard.
	kubectl(t, "label", "note", "unsharded", "-n", ns, "shard=b")
	waitNoteCondition(t, ns, "unsharded", "Ready")
	if !shardB.reconciled(t, "unsharded") || shardA.reconciled(t, "unsharded") {
		t.Errorf("unsharded, now shard=b, reconciled by shard-b: %v, by shard-a: %v",
			shardB.reconciled(t, "unsharded"), shardA.reconciled(t, "unsharded"))
	}
}

// Two shards, each with leader election on and a standby, as the shipped
// manifest runs them: each shard's replicas elect their leader among
// themselves (the Lease is named after the shard), both shards reconcile
// their own CRs, and a killed leader's standby takes over its shard.
func testShardsWithLeaderElection(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-shard-leaders")
	shard := func(name, selector string) []*operatorProcess {
		args := []string{"--templates", templates, "--watch-namespace", ns, "--watch-label-selector", selector,
			"--leader-elect", "--leader-election-namespace", ns}
		return []*operatorProcess{startOperator(t, bin, name+"-1", args...), startOperator(t, bin, name+"-2", args...)}
	}
	a, b := shard("shard-a", "shard=a"), shard("shard-b", "shard=b")
	var leases []string
	eventually(t, operatorTimeout, "one Lease per shard", func() error {
		leases = strings.Fields(kubectl(t, "get", "leases", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"))
		if len(leases) != 2 {
			return fmt.Errorf("leases %v", leases)
		}
		return nil
	})
	// leaderOf returns a shard's leader, its standby and its Lease.
	leaderOf := func(replicas []*operatorProcess) (leader, standby *operatorProcess, lease string) {
		t.Helper()
		for _, l := range leases {
			for i, p := range replicas {
				if p.metric(t, "leader_election_master_status", map[string]string{"name": l}) == 1 {
					return p, replicas[1-i], l
				}
			}
		}
		t.Fatalf("%s's shard has no leader", replicas[0].name)
		return nil, nil, ""
	}
	eventually(t, operatorTimeout, "each shard has its leader", func() error {
		for _, replicas := range [][]*operatorProcess{a, b} {
			found := false
			for _, l := range leases {
				for _, p := range replicas {
					found = found || p.metric(t, "leader_election_master_status", map[string]string{"name": l}) == 1
				}
			}
			if !found {
				return fmt.Errorf("%s's shard has no leader", replicas[0].name)
			}
		}
		return nil
	})
	leaderA, standbyA, leaseA := leaderOf(a)
	leaderB, _, leaseB := leaderOf(b)
	if leaseA == leaseB {
		t.Fatalf("both shards elect on Lease %s", leaseA)
	}

	applyNote(t, ns, "in-a", map[string]string{"shard": "a"}, map[string]any{"message": "a"})
	applyNote(t, ns, "in-b", map[string]string{"shard": "b"}, map[string]any{"message": "b"})
	waitNoteCondition(t, ns, "in-a", "Ready")
	waitNoteCondition(t, ns, "in-b", "Ready")
	if !leaderA.reconciled(t, "in-a") || !leaderB.reconciled(t, "in-b") {
		t.Errorf("each shard's leader reconciles its CR: %s in-a %v, %s in-b %v", leaderA.name, leaderA.reconciled(t, "in-a"), leaderB.name, leaderB.reconciled(t, "in-b"))
	}

	leaderA.kill(t)
	eventually(t, operatorTimeout, standbyA.name+" leads shard a", func() error {
		if v := standbyA.metric(t, "leader_election_master_status", map[string]string{"name": leaseA}); v != 1 {
			return fmt.Errorf("leader_election_master_status = %v", v)
		}
		return nil
	})
	applyNote(t, ns, "in-a-again", map[string]string{"shard": "a"}, map[string]any{"message": "a again"})
	waitNoteCondition(t, ns, "in-a-again", "Ready")
	if !standbyA.reconciled(t, "in-a-again") {
		t.Errorf("%s, shard a's new leader, did not reconcile in-a-again", standbyA.name)
	}
	if leaderB.reconciled(t, "in-a-again") {
		t.Errorf("%s, shard b's leader, reconciled a CR of shard a", leaderB.name)
	}
}

// Every cuerator metric, scraped over HTTP after reconciles that exercise it.
func testMetrics(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-metrics")
	p := startOperator(t, bin, "metrics", "--templates", templates, "--watch-namespace", ns)

	// A ConfigMap that no Note owns, in the way of Note "taken".
	kubectl(t, "create", "configmap", "taken", "-n", ns, "--from-literal=owner=someone")
	applyNote(t, ns, "counted", nil, map[string]any{"message": "hello", "copy": true})
	applyNote(t, ns, "broken", nil, map[string]any{"message": "boom"})
	applyNote(t, ns, "taken", nil, map[string]any{"message": "mine?"})
	waitNoteCondition(t, ns, "counted", "Ready")
	waitNoteCondition(t, ns, "broken", "Stalled")
	waitNoteCondition(t, ns, "taken", "Stalled")
	kind := map[string]string{"kind": noteKind}
	eventually(t, operatorTimeout, "cuerator_children counts both children of counted", func() error {
		if v := p.metric(t, "cuerator_children", kind); v != 2 {
			return fmt.Errorf("cuerator_children = %v", v)
		}
		return nil
	})

	// Drift: someone else edits a child; cuerator puts it back.
	kubectl(t, "patch", "configmap", "counted", "-n", ns, "--type=merge", "-p", `{"data":{"message":"edited"}}`)
	eventually(t, operatorTimeout, "drift corrected", func() error {
		if m := kubectl(t, "get", "configmap", "counted", "-n", ns, "-o", "jsonpath={.data.message}"); m != "hello" {
			return fmt.Errorf("data.message = %q", m)
		}
		return nil
	})
	// Prune: the template stops producing the copy.
	kubectl(t, "patch", "note", "counted", "-n", ns, "--type=merge", "-p", `{"spec":{"copy":false}}`)
	eventually(t, operatorTimeout, "copy pruned", func() error {
		if _, err := kubectlOut(testCluster.KubeconfigPath, "get", "configmap", "counted-copy", "-n", ns); err == nil {
			return errors.New("configmap counted-copy still exists")
		}
		return nil
	})

	configMaps := map[string]string{"kind": noteKind, "child_kind": "ConfigMap"}
	eventually(t, operatorTimeout, "metrics of every phase and event", func() error {
		fams := p.scrape(t)
		var missing []string
		for _, want := range []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
		}{
			{"cuerator_reconcile_duration_seconds", map[string]string{"kind": noteKind, "phase": "render"}, positive},
			{"cuerator_reconcile_duration_seconds", map[string]string{"kind": noteKind, "phase": "apply"}, positive},
			{"cuerator_reconcile_duration_seconds", map[string]string{"kind": noteKind, "phase": "status"}, positive},
			{"controller_runtime_reconcile_total", map[string]string{"controller": noteKind}, positive},
			{"cuerator_render_errors_total", kind, positive},
			{"cuerator_adoption_refused_total", kind, positive},
			{"cuerator_drift_total", configMaps, positive},
			{"cuerator_prune_total", configMaps, positive},
			// counted's one child now; broken and taken own none.
			{"cuerator_children", kind, func(v float64) bool { return v == 1 }},
		} {
			if v := sumMetric(fams, want.name, want.labels); !want.ok(v) {
				missing = append(missing, fmt.Sprintf("%s%v = %v", want.name, want.labels, v))
			}
		}
		if len(missing) > 0 {
			return errors.New(strings.Join(missing, ", "))
		}
		return nil
	})
}

func positive(v float64) bool { return v > 0 }

// Bound to every interface, metrics need a token the API server accepts,
// over HTTPS, unless --metrics-secure=false says otherwise.
func testMetricsSecureByDefault(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-metrics-secure")
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	launchOperator(t, bin, "metrics-secure", ":"+port, "--templates", templates, "--watch-namespace", ns)
	eventually(t, operatorTimeout, "HTTPS metrics refuse a caller without a token", func() error {
		status, body, err := getWithToken("https://127.0.0.1:"+port+"/metrics", "")
		if err != nil {
			return err
		}
		if status != http.StatusUnauthorized {
			return fmt.Errorf("%d: %.200s", status, body)
		}
		return nil
	})
	if status, body, err := httpGet("http://127.0.0.1:" + port + "/metrics"); err == nil && status == http.StatusOK {
		t.Errorf("metrics served over plain HTTP on every interface: %.200s", body)
	}
}

func testProbes(t *testing.T, bin, templates string) {
	ns := namespace(t, "operator-probes")
	p := startOperator(t, bin, "probes", "--templates", templates, "--watch-namespace", ns)
	// startOperator has seen /healthz answer; /readyz follows once the
	// caches have synced.
	p.waitHTTP200(t, "http://"+p.probes+"/readyz")
	p.waitHTTP200(t, "http://"+p.probes+"/healthz")
}

// The binary the image ships, built by the Dockerfile's own build script: it
// must be static (distroless/static has no libc), stripped and free of
// local paths, and run.
func testStaticBinary(t *testing.T, templates string) {
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	const script = "hack/build-static.sh"
	if !bytes.Contains(dockerfile, []byte(script)) {
		t.Fatalf("the Dockerfile no longer builds with %s, so this test no longer checks its binary", script)
	}
	bin := filepath.Join(t.TempDir(), "cuerator")
	const stamped = "v0.0.0-e2e"
	t.Setenv("VERSION", stamped)
	goBuild(t, "sh", script, bin)
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), stamped) {
		t.Errorf("cuerator version of the image's binary: %q (%v), want the stamped %s", out, err, stamped)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("dynamically linked: has a %s program header", prog.Type)
		}
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("not stripped (-s -w): has section %s", s.Name)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(root+string(filepath.Separator))) {
		t.Errorf("binary contains the build path %s (-trimpath)", root)
	}

	ns := namespace(t, "operator-static")
	p := startOperator(t, bin, "static", "--templates", templates, "--watch-namespace", ns)
	p.waitHTTP200(t, "http://"+p.probes+"/healthz")
	p.waitHTTP200(t, "http://"+p.probes+"/readyz")
}

// goBuild runs a build command in the repository root.
func goBuild(t testing.TB, name string, args ...string) {
	t.Helper()
	// Generous: a cold build cache on a busy machine compiles all of
	// Kubernetes and CUE.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// installTemplateCRD installs the CRD that `cuerator crds --templates`
// generates, as a user would, and removes it (and every CR of it) at the end.
func installTemplateCRD(t testing.TB, bin, templates, crd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds, err := exec.CommandContext(ctx, bin, "crds", "--templates", templates).Output()
	if err != nil {
		t.Fatalf("cuerator crds: %v", err)
	}
	kubectlIn(t, string(crds), "apply", "--server-side", "-f", "-")
	t.Cleanup(func() {
		if out, err := kubectlOut(testCluster.KubeconfigPath, "delete", "crd", crd, "--ignore-not-found"); err != nil {
			t.Logf("deleting CRD %s: %v\n%s", crd, err, out)
		}
		// Until discovery, and kubectl's cache of it, forget the group, a
		// later test's `kubectl get widget/w` could still resolve to it.
		// api-resources reads discovery afresh and rewrites that cache. A
		// CRD whose CRs are slow to go is only reported: the test is over.
		group := crd[strings.Index(crd, ".")+1:]
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			out, err := kubectlOut(testCluster.KubeconfigPath, "api-resources", "--api-group="+group, "-o", "name")
			if err == nil && strings.TrimSpace(out) == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Logf("the API server still serves %s a minute after its CRD was deleted: %v %s", group, err, out)
				return
			}
		}
	})
	kubectl(t, "wait", "--for=condition=Established", "crd/"+crd, "--timeout=60s")
}

func applyNote(t *testing.T, ns, name string, labels map[string]string, spec map[string]any) {
	t.Helper()
	meta := map[string]any{"name": name, "namespace": ns}
	if labels != nil {
		meta["labels"] = labels
	}
	b, err := json.Marshal(map[string]any{"apiVersion": noteAPIVersion, "kind": "Note", "metadata": meta, "spec": spec})
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(b), "apply", "-f", "-")
}

func waitNoteCondition(t *testing.T, ns, note, condition string) {
	t.Helper()
	kubectl(t, "wait", "--for=condition="+condition, "note/"+note, "-n", ns, fmt.Sprintf("--timeout=%s", operatorTimeout))
}

func leaseHolder(t *testing.T, ns, lease string) string {
	t.Helper()
	h := kubectl(t, "get", "lease", lease, "-n", ns, "-o", "jsonpath={.spec.holderIdentity}")
	if h == "" {
		t.Fatalf("lease %s/%s has no holder", ns, lease)
	}
	return h
}

// waitLeader waits until exactly one of ps says, in its metrics, that it
// holds lease, and returns it and another one.
func waitLeader(t *testing.T, lease string, ps []*operatorProcess) (leader, standby *operatorProcess) {
	t.Helper()
	eventually(t, operatorTimeout, "exactly one leader", func() error {
		var leaders []string
		leader, standby = nil, nil
		for _, p := range ps {
			p.mustRun(t)
			if p.metric(t, "leader_election_master_status", map[string]string{"name": lease}) == 1 {
				leaders = append(leaders, p.name)
				leader = p
			} else {
				standby = p
			}
		}
		if len(leaders) != 1 {
			return fmt.Errorf("leaders: %v", leaders)
		}
		return nil
	})
	return leader, standby
}

// fieldManagers lists an object's managedFields as manager/operation.
func fieldManagers(t *testing.T, ns, kind, name string) []string {
	t.Helper()
	var obj struct {
		Metadata struct {
			ManagedFields []struct {
				Manager   string `json:"manager"`
				Operation string `json:"operation"`
			} `json:"managedFields"`
		} `json:"metadata"`
	}
	getJSON(t, &obj, kind, name, "-n", ns, "--show-managed-fields")
	var out []string
	for _, m := range obj.Metadata.ManagedFields {
		out = append(out, m.Manager+"/"+m.Operation)
	}
	return out
}

// operatorProcess is one `cuerator run` in its own process.
type operatorProcess struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	metrics string // host:port of /metrics
	probes  string // host:port of /healthz and /readyz
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startOperator starts the binary with `run` and args against the test
// cluster, on free loopback ports, waits until it serves /healthz and
// /metrics, and stops it when the test ends.
func startOperator(t testing.TB, bin, name string, args ...string) *operatorProcess {
	t.Helper()
	p := launchOperator(t, bin, name, freeAddr(t), args...)
	// Serving both endpoints, so that a scrape failing later is a failure.
	p.waitHTTP200(t, "http://"+p.metrics+"/metrics")
	return p
}

// launchOperator starts the binary with `run`, its metrics on metricsAddr,
// its probes on a free loopback port, and args; it waits until the process
// serves /healthz and stops it when the test ends.
func launchOperator(t testing.TB, bin, name, metricsAddr string, args ...string) *operatorProcess {
	t.Helper()
	p := &operatorProcess{
		name:    name,
		logPath: filepath.Join(t.TempDir(), name+".log"),
		metrics: metricsAddr,
		probes:  freeAddr(t),
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	// Debug level logs every reconcile, which tells the processes apart.
	p.cmd = exec.Command(bin, append([]string{"run",
		"--metrics-bind-address=" + p.metrics,
		"--health-probe-bind-address=" + p.probes,
		"--zap-log-level=debug",
	}, args...)...)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Should this test binary die without cleaning up, take the operator
	// with it rather than leave it reconciling.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	p.waitHTTP200(t, "http://"+p.probes+"/healthz")
	return p
}

// stop ends the process gracefully, or kills it after a grace period, and
// shows its log if the test failed.
func (p *operatorProcess) stop(t testing.TB) {
	select {
	case <-p.exited:
	default:
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Logf("%s: SIGTERM: %v", p.name, err)
		}
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Logf("%s did not stop on SIGTERM; killing it", p.name)
			p.kill(t)
		}
	}
	if t.Failed() {
		t.Logf("%s exited (%v); %s", p.name, p.waitErr, p.logTail())
	}
}

// kill sends SIGKILL, as a node failure would, and waits for the process.
func (p *operatorProcess) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.exited
}

// mustRun fails the test at once if the process has exited, rather than
// letting a poll wait out its timeout.
func (p *operatorProcess) mustRun(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited: %v; %s", p.name, p.waitErr, p.logTail())
	default:
	}
}

func (p *operatorProcess) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return fmt.Sprintf("last lines of its log (%s):\n%s", p.logPath, strings.Join(lines, "\n"))
}

// reconcileLogs returns the process's "reconciling" log lines (JSON, one
// per reconcile that found its CR).
func (p *operatorProcess) reconcileLogs(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"msg":"reconciling"`) {
			out = append(out, line)
		}
	}
	return out
}

func (p *operatorProcess) reconciles(t *testing.T) int { return len(p.reconcileLogs(t)) }

// reconciled reports whether the process logged a reconcile of the Note.
func (p *operatorProcess) reconciled(t *testing.T, note string) bool {
	return slices.ContainsFunc(p.reconcileLogs(t), func(line string) bool {
		return strings.Contains(line, `"name":"`+note+`"`)
	})
}

// scrape reads the process's /metrics.
func (p *operatorProcess) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	p.mustRun(t)
	status, body, err := httpGet("http://" + p.metrics + "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s: GET /metrics: %d %v\n%s", p.name, status, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: parsing /metrics: %v", p.name, err)
	}
	return fams
}

func (p *operatorProcess) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	return sumMetric(p.scrape(t), name, labels)
}

// waitHTTP200 polls url until it answers 200 OK.
func (p *operatorProcess) waitHTTP200(t testing.TB, url string) {
	t.Helper()
	eventually(t, operatorTimeout, "GET "+url+" = 200", func() error {
		p.mustRun(t)
		status, body, err := httpGet(url)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("%d: %s", status, body)
		}
		return nil
	})
}

func httpGet(url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// sumMetric adds up the samples of the family name whose labels include
// want: counter and gauge values, histogram sample counts. A series that
// does not exist counts 0.
func sumMetric(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	fam, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
