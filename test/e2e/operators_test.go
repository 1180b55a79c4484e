package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cuerator/cuerator/render"
)

// The other operators' CRDs, from the Go modules that ship them, pinned by
// version and by the module's checksum (what go.sum would hold). The
// operators themselves do not run here: the tests write the status they
// would write.
var (
	prometheusOperator = operatorModule{
		path:    "github.com/prometheus-operator/prometheus-operator",
		version: "v0.94.0",
		sum:     "h1:VxMKzqr8Xqw5/QInNT7a3B5XInPnHqE7SD2UIdwKpRM=",
	}
	eck = operatorModule{
		path:    "github.com/elastic/cloud-on-k8s/v3",
		version: "v3.5.0",
		sum:     "h1:sR4oj+gNnwI9hgsKhBwjUlx+5F2T/kND40hrzaogtek=",
	}
)

// The MySQL Operator ships no Go module: its CRD is committed, written by
// hand (testdata/mysql-operator/README.md says from what).
const innoDBClusterCRD = "testdata/mysql-operator/innodbclusters-crd.yaml"

type operatorModule struct{ path, version, sum string }

// dir downloads the module through the Go module proxy (or finds it in the
// module cache) and returns where it lies, after checking its checksum.
func (m operatorModule) dir(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", m.path+"@"+m.version)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Sum, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Error != "" || err != nil {
		t.Fatalf("go mod download %s@%s: %v %s %s", m.path, m.version, err, info.Error, out)
	}
	if info.Sum != m.sum {
		t.Fatalf("%s@%s has checksum %s, pinned %s", m.path, m.version, info.Sum, m.sum)
	}
	return info.Dir
}

// crd returns the CRD named name from the module's file (one CRD or
// several).
func (m operatorModule) crd(t *testing.T, file, name string) string {
	t.Helper()
	return crdNamed(t, filepath.Join(m.dir(t), file), name)
}

func crdNamed(t *testing.T, file, name string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.ReadManifests(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && o.GetName() == name {
			out, err := json.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			return string(out)
		}
	}
	t.Fatalf("%s holds no CRD %s", file, name)
	return ""
}

// installCRD installs an operator's CRD until the test ends; the CRs of it
// go with it. A CRD the cluster serves already (another test's, a real
// operator's) is left as it is.
func installCRD(t *testing.T, manifest, name string) {
	t.Helper()
	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", "crd/"+name); err == nil {
		return
	}
	// Server-side: the Prometheus CRD is larger than the annotation a
	// client-side apply keeps.
	kubectlIn(t, manifest, "apply", "--server-side", "-f", "-")
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "crd/"+name, "--wait=true", "--timeout=60s")
	})
	// Until the API server has written the CRD's first status, kubectl
	// wait fails rather than waits.
	eventually(t, 60*time.Second, "crd/"+name+" established", func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "wait", "--for=condition=Established", "crd/"+name, "--timeout=5s")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// installOperatorCRDs installs the CRDs of the kinds the shipped templates
// produce for other operators, until the test ends.
func installOperatorCRDs(t *testing.T) {
	t.Helper()
	installCRD(t, prometheusOperator.crd(t, "example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml", "prometheuses.monitoring.coreos.com"), "prometheuses.monitoring.coreos.com")
	installCRD(t, eck.crd(t, "config/crds/v1/all-crds.yaml", "elasticsearches.elasticsearch.k8s.elastic.co"), "elasticsearches.elasticsearch.k8s.elastic.co")
	installCRD(t, crdNamed(t, innoDBClusterCRD, "innodbclusters.mysql.oracle.com"), "innodbclusters.mysql.oracle.com")
}

// otherOperatorsReport plays the Prometheus Operator and ECK for the
// samples' children in ns: each reports its child ready.
func otherOperatorsReport(t *testing.T, ns string) {
	t.Helper()
	waitChild(t, ns, "prometheus.monitoring.coreos.com", "prometheus")
	patchStatus(t, ns, "prometheus.monitoring.coreos.com/prometheus", `{"availableReplicas":1,"conditions":[{"type":"Available","status":"True","lastTransitionTime":"2026-12-02T00:00:00Z"}]}`)
	waitChild(t, ns, "elasticsearch", "quickstart")
	patchStatus(t, ns, "elasticsearch/quickstart", `{"health":"green","phase":"Ready","availableNodes":1}`)
}

// waitNotServed waits until the CR is not Ready and names the kind the
// cluster does not serve.
func waitNotServed(t *testing.T, ns, cr, kind string) {
	t.Helper()
	eventually(t, 60*time.Second, cr+" names "+kind+" as not served", func() error {
		c := condition(t, ns, cr, "Ready")
		if !strings.HasPrefix(c, "False/") || !strings.Contains(c, kind) || !strings.Contains(c, "not served") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
}

func waitChild(t *testing.T, ns, resource, name string) {
	t.Helper()
	eventually(t, 90*time.Second, resource+" "+name+" created", func() error {
		if !childExists(ns, resource, name) {
			return fmt.Errorf("no %s %s", resource, name)
		}
		return nil
	})
}

// waitNotReady waits until the CR is Ready=False naming the child and
// saying what its template's readiness says.
func waitNotReady(t *testing.T, ns, cr, child, reason string) {
	t.Helper()
	eventually(t, 60*time.Second, cr+" not ready, naming "+child, func() error {
		c := condition(t, ns, cr, "Ready")
		if !strings.HasPrefix(c, "False/") || !strings.Contains(c, child) || !strings.Contains(c, reason) {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
}

func patchStatus(t *testing.T, ns, object, status string) {
	t.Helper()
	kubectl(t, "patch", "-n", ns, object, "--subresource=status", "--type=merge", "-p", `{"status":`+status+`}`)
}

// A Database of type mysql composes the MySQL Operator: without its CRD it
// says InnoDBCluster is not served and still creates its root Secret; with
// the CRD, it gets the seed's InnoDBCluster, and its status and Ready
// follow what the operator writes. The InnoDBCluster is reconciled as a built-in child is:
// an edit is undone, a child someone else made is not taken, the CR's own
// CRD refuses a shape the template refuses, and a Database that becomes
// PostgreSQL has its InnoDBCluster pruned.
func TestDatabaseMySQL(t *testing.T) {
	const crd = "innodbclusters.mysql.oracle.com"
	ns := namespace(t, "database-mysql")
	const cr = "database/mycluster"
	manifest, err := os.ReadFile("../../cmd/cuerator/testdata/seed/database-mysql.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(manifest), "apply", "-n", ns, "-f", "-")

	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", "crd/"+crd); err != nil {
		waitNotServed(t, ns, cr, "InnoDBCluster")
		if !childExists(ns, "secret", "mycluster-secret") {
			t.Error("without the InnoDBCluster CRD, the root Secret was not created")
		}
	}
	installCRD(t, crdNamed(t, innoDBClusterCRD, crd), crd)

	waitChild(t, ns, "innodbcluster", "mycluster")
	ic := getObject(t, ns, "innodbcluster", "mycluster")
	if ic.field("secretName") != "mycluster-secret" || ic.field("tlsUseSelfSigned") != true ||
		ic.field("instances") != 3.0 || ic.field("router.instances") != 2.0 || ic.field("version") != "9.1.0" {
		t.Errorf("InnoDBCluster spec: %v", ic.Spec)
	}
	if !ic.controlledBy(crUID(t, ns, cr)) {
		t.Errorf("the InnoDBCluster is not controlled by the Database: %+v", ic.Metadata.OwnerReferences)
	}
	secret := getObject(t, ns, "secret", "mycluster-secret")
	for _, key := range []string{"rootUser", "rootHost", "rootPassword"} {
		if secret.Data[key] == "" {
			t.Errorf("the root Secret has no %s", key)
		}
	}
	waitForStatus(t, ns, cr, "endpoint", "mycluster."+ns+".svc:3306")
	waitForStatus(t, ns, cr, "clusterStatus", "PENDING")
	// kstatus calls the InnoDBCluster Current; the template does not.
	waitNotReady(t, ns, cr, "InnoDBCluster/"+ns+"/mycluster", "is PENDING: 0 of 3 instances online")

	// The operator brings the cluster online, then loses an instance.
	patchStatus(t, ns, "innodbcluster/mycluster", `{"cluster":{"status":"ONLINE","onlineInstances":3}}`)
	waitForStatus(t, ns, cr, "clusterStatus", "ONLINE")
	waitForStatus(t, ns, cr, "readyReplicas", "3")
	waitReady(t, ns, cr)
	patchStatus(t, ns, "innodbcluster/mycluster", `{"cluster":{"status":"ONLINE_PARTIAL","onlineInstances":2}}`)
	waitForStatus(t, ns, cr, "clusterStatus", "ONLINE_PARTIAL")
	waitForStatus(t, ns, cr, "readyReplicas", "2")
	waitNotReady(t, ns, cr, "InnoDBCluster/"+ns+"/mycluster", "is ONLINE_PARTIAL: 2 of 3 instances online")
	patchStatus(t, ns, "innodbcluster/mycluster", `{"cluster":{"status":"ONLINE","onlineInstances":3}}`)
	waitReady(t, ns, cr)

	// Drift: an edit of a field the template sets is undone.
	kubectl(t, "patch", "-n", ns, "innodbcluster/mycluster", "--type=merge", "-p", `{"spec":{"instances":5}}`)
	eventually(t, 60*time.Second, "the InnoDBCluster's instances put back", func() error {
		if n := getObject(t, ns, "innodbcluster", "mycluster").field("instances"); n != 3.0 {
			return fmt.Errorf("instances %v", n)
		}
		return nil
	})

	// Admission: the Database's CRD refuses the shape the template refuses.
	out := kubectlFails(t, "apiVersion: database.example.com/v1alpha1\nkind: Database\nmetadata: {name: big}\nspec: {type: mysql, version: 9.1.0, storage: {size: 1Gi}, mysql: {instances: 10}}\n", "apply", "-n", ns, "-f", "-")
	if !strings.Contains(out, "spec.mysql.instances") {
		t.Errorf("kubectl apply of 10 instances: %s", out)
	}

	// Adoption: an InnoDBCluster someone else made is left alone.
	kubectlIn(t, "apiVersion: mysql.oracle.com/v2\nkind: InnoDBCluster\nmetadata: {name: taken}\nspec: {secretName: theirs, instances: 1}\n", "create", "-n", ns, "-f", "-")
	kubectlIn(t, "apiVersion: database.example.com/v1alpha1\nkind: Database\nmetadata: {name: taken}\nspec: {type: mysql, version: 9.1.0, storage: {size: 1Gi}}\n", "apply", "-n", ns, "-f", "-")
	eventually(t, 60*time.Second, "adoption refused", func() error {
		c := condition(t, ns, "database/taken", "Stalled")
		if !strings.HasPrefix(c, "True/AdoptionRefused") || !strings.Contains(c, "InnoDBCluster/"+ns+"/taken") {
			return fmt.Errorf("Stalled condition %q", c)
		}
		return nil
	})
	if s := getObject(t, ns, "innodbcluster", "taken").field("secretName"); s != "theirs" {
		t.Errorf("the InnoDBCluster someone else made was changed: secretName %v", s)
	}

	// Prune: as PostgreSQL, the Database has no InnoDBCluster; the root
	// Secret is retained, as the data it opens is.
	kubectl(t, "patch", "-n", ns, cr, "--type=json", "-p", `[{"op":"replace","path":"/spec/type","value":"postgresql"},{"op":"replace","path":"/spec/version","value":"16"},{"op":"remove","path":"/spec/mysql"}]`)
	eventually(t, 90*time.Second, "InnoDBCluster pruned", func() error {
		if childExists(ns, "innodbcluster", "mycluster") {
			return fmt.Errorf("InnoDBCluster mycluster is still there")
		}
		return nil
	})
	waitChild(t, ns, "statefulset", "mycluster")
	if !childExists(ns, "secret", "mycluster-secret") {
		t.Error("the root Secret went with the InnoDBCluster")
	}
}

// A Monitoring stands up a Prometheus, from the Prometheus Operator's own
// CRD, with the ServiceAccount and Role it runs with; it selects the
// ServiceMonitor of a WebApp in its namespace, and follows the status the
// Prometheus Operator writes. Without the CRD, it says Prometheus is not
// served and its other children are there.
func TestMonitoringPrometheus(t *testing.T) {
	const crd = "prometheuses.monitoring.coreos.com"
	ns := namespace(t, "monitoring-prometheus")
	const cr = "monitoring/prometheus"
	kubectl(t, "apply", "-n", ns, "-f", "../../examples/monitoring-sample.yaml")

	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", "crd/"+crd); err != nil {
		waitNotServed(t, ns, cr, "Prometheus")
		for _, o := range [][2]string{{"serviceaccount", "prometheus"}, {"role", "prometheus-prometheus"}, {"rolebinding", "prometheus-prometheus"}} {
			waitChild(t, ns, o[0], o[1])
		}
	}
	installCRD(t, prometheusOperator.crd(t, "example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml", crd), crd)
	installCRD(t, prometheusOperator.crd(t, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml", "servicemonitors.monitoring.coreos.com"), "servicemonitors.monitoring.coreos.com")

	waitChild(t, ns, "prometheus", "prometheus")
	p := getObject(t, ns, "prometheus.monitoring.coreos.com", "prometheus")
	if p.field("serviceAccountName") != "prometheus" || p.field("serviceMonitorSelector.matchLabels.team") != "frontend" ||
		p.field("ruleSelector.matchLabels.role") != "alert-rules" || p.field("resources.requests.memory") != "400Mi" {
		t.Errorf("Prometheus spec: %v", p.Spec)
	}
	waitForStatus(t, ns, cr, "available", "false")
	waitNotReady(t, ns, cr, "Prometheus/"+ns+"/prometheus", "is not available yet")

	// The Prometheus Operator reports it Available, then not.
	patchStatus(t, ns, "prometheus.monitoring.coreos.com/prometheus", `{"availableReplicas":1,"replicas":1,"updatedReplicas":1,"unavailableReplicas":0,"paused":false,"conditions":[{"type":"Available","status":"True","lastTransitionTime":"2026-12-02T00:00:00Z"}]}`)
	waitForStatus(t, ns, cr, "available", "true")
	waitForStatus(t, ns, cr, "availableReplicas", "1")
	waitReady(t, ns, cr)
	patchStatus(t, ns, "prometheus.monitoring.coreos.com/prometheus", `{"availableReplicas":0,"conditions":[{"type":"Available","status":"False","lastTransitionTime":"2026-12-02T00:01:00Z","reason":"NoPodReady","message":"shard 0: pod prometheus-prometheus-0: containers with incomplete status"}]}`)
	waitForStatus(t, ns, cr, "available", "false")
	waitForStatus(t, ns, cr, "availableReplicas", "0")
	waitNotReady(t, ns, cr, "Prometheus/"+ns+"/prometheus", "shard 0: pod prometheus-prometheus-0: containers with incomplete status")

	// A WebApp with monitoring, its team's label on the Monitoring's
	// selector: the Prometheus Operator would give the Prometheus its
	// ServiceMonitor.
	kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"serviceMonitorSelector":{"matchLabels":{"team":null,"app.kubernetes.io/part-of":"shop"}}}}`)
	kubectlIn(t, "apiVersion: apps.example.com/v1alpha1\nkind: WebApp\nmetadata: {name: shop}\nspec: {image: nginx:alpine, domain: shop.example.com, monitoring: {enabled: true}}\n", "apply", "-n", ns, "-f", "-")
	waitChild(t, ns, "servicemonitor", "shop")
	eventually(t, 60*time.Second, "the Prometheus selects the WebApp's ServiceMonitor", func() error {
		var sel metav1.LabelSelector
		if err := json.Unmarshal([]byte(jsonpath(t, ns, "prometheus.monitoring.coreos.com/prometheus", "{.spec.serviceMonitorSelector}")), &sel); err != nil {
			return err
		}
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return err
		}
		var smLabels map[string]string
		if err := json.Unmarshal([]byte(jsonpath(t, ns, "servicemonitor/shop", "{.metadata.labels}")), &smLabels); err != nil {
			return err
		}
		if !selector.Matches(labels.Set(smLabels)) {
			return fmt.Errorf("selector %v does not match %v", selector, smLabels)
		}
		return nil
	})
}

// A SearchCluster stands up an Elasticsearch, from ECK's own CRD, and
// follows the health and phase ECK writes. Without the CRD, it says
// Elasticsearch is not served.
func TestSearchClusterElasticsearch(t *testing.T) {
	const crd = "elasticsearches.elasticsearch.k8s.elastic.co"
	ns := namespace(t, "search-elasticsearch")
	const cr = "searchcluster/quickstart"
	kubectl(t, "apply", "-n", ns, "-f", "../../examples/searchcluster-sample.yaml")

	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", "crd/"+crd); err != nil {
		waitNotServed(t, ns, cr, "Elasticsearch")
	}
	installCRD(t, eck.crd(t, "config/crds/v1/all-crds.yaml", crd), crd)

	waitChild(t, ns, "elasticsearch", "quickstart")
	es := getObject(t, ns, "elasticsearch", "quickstart")
	if es.field("version") != "8.8.0" || es.field("nodeSets.0.name") != "default" || es.field("nodeSets.0.count") != 1.0 ||
		fmt.Sprint(es.field("nodeSets.0.config")) != "map[node.roles:[master data ingest]]" {
		t.Errorf("Elasticsearch spec: %v", es.Spec)
	}
	waitForStatus(t, ns, cr, "health", "unknown")
	waitForStatus(t, ns, cr, "endpoint", "https://quickstart-es-http."+ns+".svc:9200")
	waitNotReady(t, ns, cr, "Elasticsearch/"+ns+"/quickstart", "is unknown, phase Pending")

	// ECK reports the cluster green and Ready, then yellow while it
	// applies a change.
	patchStatus(t, ns, "elasticsearch/quickstart", `{"health":"green","phase":"Ready","availableNodes":1,"version":"8.8.0"}`)
	waitForStatus(t, ns, cr, "health", "green")
	waitForStatus(t, ns, cr, "phase", "Ready")
	waitForStatus(t, ns, cr, "availableNodes", "1")
	waitReady(t, ns, cr)
	patchStatus(t, ns, "elasticsearch/quickstart", `{"health":"yellow","phase":"ApplyingChanges"}`)
	waitForStatus(t, ns, cr, "health", "yellow")
	waitForStatus(t, ns, cr, "phase", "ApplyingChanges")
	waitNotReady(t, ns, cr, "Elasticsearch/"+ns+"/quickstart", "is yellow, phase ApplyingChanges")
}
