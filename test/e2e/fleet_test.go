package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/cluster"
)

const (
	fleetGroup    = "fleet.test.cuerator.dev"
	fleetOperator = "fleet-operator"
	fleetLease    = "fleet-leader"

	// quietPeriod is how long a converged fleet is watched for a hot loop.
	quietPeriod = 20 * time.Second
	// leaseRetry is controller-runtime's leader-election retry period: the
	// leader renews its Lease (a GET and an UPDATE) and a standby tries to
	// take it (a GET) this often, whatever the CRs do.
	leaseRetry = 2 * time.Second
	// maxQuietReconciles is how often a converged CR may be reconciled in
	// quietPeriod: once per status change of its Deployment as its pods
	// become ready (three at most); a CR in a loop, even one backing off to
	// 2 s, is reconciled ten times or more.
	maxQuietReconciles = 5
)

// TestReliabilityFleet runs 200 Widgets under two replicas of the operator
// as it is deployed: leader election on, the identity of a ServiceAccount
// bound to the RBAC `cuerator rbac` generates. Four faults strike in turn,
// each during a storm of spec changes: the leader killed, the API server
// throttling, watches expiring, a webhook refusing one child kind. After each, every CR converges to exactly its
// spec (nothing lost, nothing leaked, inventories equal to the live
// children) and a quiet period shows no hot loop.
func TestReliabilityFleet(t *testing.T) {
	if os.Getenv(cluster.EnvTestKubeconfig) != "" {
		t.Skip("the API server was not started by this test binary: its flags cannot change")
	}
	f := newFaultRun(t, fleetGroup, "reliability-fleet")
	fl := startFleet(t, f)
	f.createFleet()
	rounds := 3
	if longTests() {
		rounds = 8
	}

	t.Run("leader killed during a storm", func(t *testing.T) {
		f.t = t
		kills := 0
		f.storm(rounds, func(int) string {
			leader, _ := fl.leader(t)
			leader.kill(t)
			kills++
			fl.replace(leader)
			return "killed the leader " + leader.name
		})
		f.waitConverged()
		f.check(fmt.Sprintf("%d leaders killed", kills))
		fl.quiet(t)
	})

	t.Run("API server throttling", func(t *testing.T) {
		f.t = t
		// Without API Priority and Fairness, the max-inflight filter answers
		// 429 (Retry-After: 1) to any request over the limit, from every
		// identity but system:masters: the operator alone is throttled.
		restartAPIServer(t, map[string]string{
			"enable-priority-and-fairness":   "false",
			"max-requests-inflight":          "3",
			"max-mutating-requests-inflight": "1",
		})
		before := fl.sum(t, "rest_client_requests_total", map[string]string{"code": "429"})
		f.storm(rounds, func(int) string { return "throttled" })
		f.waitConverged()
		throttled := fl.sum(t, "rest_client_requests_total", map[string]string{"code": "429"}) - before
		f.check(fmt.Sprintf("%.0f requests refused with 429, %d replica restarts", throttled, fl.revived))
		if throttled == 0 {
			t.Error("no request of the operator was refused with 429: the fault did not happen")
		}
		fl.quiet(t)
	})

	t.Run("watches expire", func(t *testing.T) {
		f.t = t
		// Each round compacts etcd at its current revision and restarts the
		// API server, as a control plane's rolling upgrade does: its watch
		// cache starts again from the current revision, so every informer's
		// watch resumes from one that neither the cache nor etcd still has,
		// is refused (410 Gone) and lists again. The API server's counters
		// start again with it: each life's are added up before it ends.
		var traffic childTraffic
		baseline := childRequests(t)
		f.storm(rounds*2, func(round int) string {
			life := childRequests(t)
			if round == 1 {
				life = life.minus(baseline)
			}
			traffic = traffic.plus(life)
			rev, err := testCluster.CompactEtcd()
			if err != nil {
				t.Fatal(err)
			}
			if err := testCluster.RestartAPIServer(nil); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("compacted etcd at revision %d and restarted the API server", rev)
		})
		f.waitConverged()
		traffic = traffic.plus(childRequests(t))
		f.check(fmt.Sprintf("%d API server restarts after compaction, %.0f lists of children", rounds*2, traffic.lists))
		if traffic.lists == 0 {
			t.Error("no list of the children's kinds after watches expired: the informers did not list again, or the fault did not happen")
		}
		fl.quiet(t)
	})

	t.Run("a webhook refuses a child kind", func(t *testing.T) {
		f.t = t
		hadVolume := map[string]bool{}
		for name, s := range f.specs {
			hadVolume[name] = s.Volume
		}
		refused := refuseVolumes(t, f.ns, "widget."+fleetGroup)
		f.storm(rounds, func(int) string { return fmt.Sprintf("%d claims refused so far", refused.Load()) })
		// A CR whose claim is refused says why; every other converges.
		f.waitSettled("every Widget converged, or refused its claim by name", func(w unstructured.Unstructured) bool {
			refusal := f.specs[w.GetName()].Volume && observedGeneration(w) == w.GetGeneration() && strings.Contains(readyMessage(w), volumePolicy)
			return converged(w) || refusal
		})
		// Those that asked for a new claim cannot have it.
		blocked := 0
		widgets, err := f.widgets()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range widgets {
			if f.specs[w.GetName()].Volume && !hadVolume[w.GetName()] {
				blocked++
				if msg := readyMessage(w); !strings.Contains(msg, volumePolicy) {
					t.Errorf("%s asked for a new claim, which the webhook refuses; Ready says %q", w.GetName(), msg)
				}
			}
		}
		if blocked == 0 {
			t.Error("no CR asked for a new claim while the webhook refused them: the fault did not happen")
		}
		kubectl(t, "delete", "validatingwebhookconfiguration", volumeWebhook)
		f.waitConverged()
		f.check(fmt.Sprintf("%d CRs refused a new claim, %d admission reviews refused", blocked, refused.Load()))
		fl.quiet(t)
	})
}

// fleet is the replicas of the operator that serve a faultRun.
type fleet struct {
	// t is the test the replicas live as long as.
	t        *testing.T
	f        *faultRun
	args     []string
	replicas []*operatorProcess
	started  int // replicas started so far, to name the next
	revived  int // replicas started again because they exited
}

// startFleet grants the operator's ServiceAccount what `cuerator rbac
// --install-crds` generates for the templates, and starts two replicas
// with that identity, electing their leader.
func startFleet(t *testing.T, f *faultRun) *fleet {
	t.Helper()
	lib, err := render.Load(os.DirFS(f.templates))
	if err != nil {
		t.Fatal(err)
	}
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: fleetOperator, Namespace: f.ns}
	manager, installer := rbac.ManagerClusterRole(lib), rbac.CRDInstallerClusterRole(lib)
	manager.Name, installer.Name = "test-"+fleetOperator, "test-"+fleetOperator+"-crd-installer"
	election := rbac.LeaderElectionRole(f.ns)
	objects := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fleetOperator, Namespace: f.ns}},
		manager, installer, election,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: election.Name, Namespace: f.ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: election.Name},
			Subjects:   []rbacv1.Subject{subject},
		},
	}
	for _, role := range []*rbacv1.ClusterRole{manager, installer} {
		objects = append(objects, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{subject},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, obj := range objects {
		if err := f.api.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
		if obj.GetNamespace() == "" {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = f.api.Delete(ctx, obj)
			})
		}
	}

	fl := &fleet{t: t, f: f, args: append(f.operatorArgs,
		"--leader-elect", "--leader-election-namespace", f.ns, "--leader-election-id", fleetLease,
		"--as", "system:serviceaccount:"+f.ns+":"+fleetOperator,
	)}
	fl.start()
	fl.start()
	f.whilePolling = fl.revive
	return fl
}

func (fl *fleet) start() {
	fl.t.Helper()
	fl.started++
	fl.replicas = append(fl.replicas, startOperator(fl.t, fl.f.bin, fmt.Sprintf("fleet-%d", fl.started), fl.args...))
}

// replace starts a replica in the place of gone, as its Deployment would.
func (fl *fleet) replace(gone *operatorProcess) {
	for i, p := range fl.replicas {
		if p == gone {
			fl.replicas = append(fl.replicas[:i], fl.replicas[i+1:]...)
			break
		}
	}
	fl.start()
}

// revive replaces the replicas that exited by themselves, as a replica
// whose renewals of its Lease fail does, and as a kubelet would restart it.
func (fl *fleet) revive() {
	for _, p := range append([]*operatorProcess(nil), fl.replicas...) {
		select {
		case <-p.exited:
			fl.f.t.Logf("%s exited (%v): started again", p.name, p.waitErr)
			fl.revived++
			fl.replace(p)
		default:
		}
	}
}

// leader waits for the replica that holds the Lease.
func (fl *fleet) leader(t *testing.T) (leader, standby *operatorProcess) {
	t.Helper()
	fl.revive()
	return waitLeader(t, fleetLease, fl.replicas)
}

// sum adds up a metric over the replicas alive now.
func (fl *fleet) sum(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	fl.revive()
	var total float64
	for _, p := range fl.replicas {
		total += p.metric(t, name, labels)
	}
	return total
}

// restartAPIServer restarts the API server with flags changed (see
// cluster.RestartAPIServer), and with its default flags when the test ends.
func restartAPIServer(t *testing.T, flags map[string]string) {
	t.Helper()
	if err := testCluster.RestartAPIServer(flags); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defaults := map[string]string{}
		for name := range flags {
			defaults[name] = ""
		}
		if err := testCluster.RestartAPIServer(defaults); err != nil {
			t.Errorf("restoring the API server's flags: %v", err)
		}
	})
}

// quiet watches the converged fleet for quietPeriod, in which no spec
// changes: a CR reconciled more than maxQuietReconciles times, or requests
// beyond the Lease's and a few per reconcile, is a hot loop.
func (fl *fleet) quiet(t *testing.T) {
	t.Helper()
	// A converged Widget may still be rolling out its Deployment: each pod
	// that becomes ready is news its CR hears, however fast it reconciles.
	// The fleet is at rest once every rollout is done.
	fl.waitRolledOut(t)
	leader, _ := fl.leader(t)
	requestsBefore := fl.sum(t, "rest_client_requests_total", nil)
	logsBefore := len(leader.reconcileLogs(t))
	time.Sleep(quietPeriod)
	requests := fl.sum(t, "rest_client_requests_total", nil) - requestsBefore
	reconciles := map[string]int{}
	for _, line := range leader.reconcileLogs(t)[logsBefore:] {
		var entry struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("reconcile log line %q: %v", line, err)
		}
		reconciles[entry.Name]++
	}
	total := 0
	for name, n := range reconciles {
		total += n
		if n > maxQuietReconciles {
			t.Errorf("%s reconciled %d times in %s with no spec changing: a hot loop", name, n, quietPeriod)
		}
	}
	// The leader renews (GET, UPDATE) and the standby tries (GET) every
	// leaseRetry; a reconcile with nothing to do costs no more than a few.
	lease := float64(3 * int(quietPeriod/leaseRetry))
	if allowed := lease + 5*float64(total); requests > allowed {
		t.Errorf("%.0f requests in %s of quiet, over the Lease's %.0f and 5 for each of %d reconciles: a hot loop", requests, quietPeriod, lease, total)
	}
	t.Logf("figures: quiet %s: %.0f requests, %d reconciles of %d CRs", quietPeriod, requests, total, len(reconciles))
}

// waitRolledOut waits until every Deployment of the fleet has all its
// replicas updated and available at its current generation.
func (fl *fleet) waitRolledOut(t *testing.T) {
	t.Helper()
	eventually(t, 2*time.Minute, "every Deployment of the fleet rolled out", func() error {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("apps/v1")
		list.SetKind("DeploymentList")
		if err := fl.f.api.List(context.Background(), list, client.InNamespace(fl.f.ns)); err != nil {
			return err
		}
		var rolling []string
		for _, d := range list.Items {
			field := func(path ...string) int64 {
				v, _, _ := unstructured.NestedInt64(d.Object, path...)
				return v
			}
			replicas, found, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
			if !found {
				replicas = 1
			}
			if field("status", "observedGeneration") < d.GetGeneration() || field("status", "updatedReplicas") != replicas ||
				field("status", "availableReplicas") != replicas || field("status", "replicas") != replicas {
				rolling = append(rolling, d.GetName())
			}
		}
		if len(rolling) > 0 {
			return fmt.Errorf("%d rolling out, e.g. %v", len(rolling), rolling[:min(5, len(rolling))])
		}
		return nil
	})
}

// childTraffic counts the API server's lists (a plain LIST, or a watch that
// streams the initial list first, as client-go's informers do) of the kinds
// of a Widget's children in one namespace: the operator's informers, which
// this test's own reads do not touch until its final checks.
type childTraffic struct{ lists float64 }

func (c childTraffic) plus(d childTraffic) childTraffic  { return childTraffic{c.lists + d.lists} }
func (c childTraffic) minus(d childTraffic) childTraffic { return childTraffic{c.lists - d.lists} }

func childRequests(t *testing.T) childTraffic {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(kubectl(t, "get", "--raw", "/metrics")))
	if err != nil {
		t.Fatalf("the API server's /metrics: %v", err)
	}
	var c childTraffic
	for _, resource := range []string{"deployments", "configmaps", "persistentvolumeclaims"} {
		in := map[string]string{"scope": "namespace", "resource": resource}
		c.lists += sumMetric(fams, "apiserver_request_total", with(in, "verb", "LIST")) +
			sumMetric(fams, "apiserver_watch_list_duration_seconds", in)
	}
	return c
}

// with returns labels and name=value.
func with(labels map[string]string, name, value string) map[string]string {
	out := maps.Clone(labels)
	out[name] = value
	return out
}

const (
	volumeWebhook = "reliability-fleet-volumes"
	// volumePolicy is what the webhook answers; the refused CRs must say it.
	volumePolicy = "new volumes are frozen in this namespace"
)

// refuseVolumes serves a validating webhook, on loopback, that refuses
// every write of a PersistentVolumeClaim owned by ownerKind in ns, as a
// platform's policy engine would, and registers it with the API server.
// It returns the count of reviews it refused.
func refuseVolumes(t *testing.T, ns, ownerKind string) *atomic.Int64 {
	t.Helper()
	refused := &atomic.Int64{}
	server := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
			return
		}
		refused.Add(1)
		review.Response = &admissionv1.AdmissionResponse{
			UID:     review.Request.UID,
			Allowed: false,
			Result:  &metav1.Status{Code: http.StatusForbidden, Message: volumePolicy},
		}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	t.Cleanup(server.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})
	webhook := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: volumeWebhook},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "volumes.reliability.test.cuerator.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL:      ptr.To(server.URL + "/validate"),
				CABundle: ca,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"persistentvolumeclaims"},
				},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"cuerator.dev/owner-kind": ownerKind}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		}},
	}
	api, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := api.Create(ctx, webhook); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "--ignore-not-found", "validatingwebhookconfiguration", volumeWebhook)
	})
	return refused
}
