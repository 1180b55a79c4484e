package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/corpus"
)

const (
	webAppSample   = "../../examples/webapp-sample.yaml"
	databaseSample = "../../examples/database-sample.yaml"
	corpusDir      = "../corpus"
	// bin/cue comes from `make cue-tool`, at the version cuerator embeds.
	cueTool = "../../bin/cue"
)

// corpusKinds maps a corpus file's name prefix to the kind's directory in
// schemas/ and its whole-manifest definition.
var corpusKinds = map[string]struct{ dir, def string }{
	"webapp":        {"webapp", "#WebApp"},
	"database":      {"database", "#Database"},
	"memcached":     {"memcached", "#Memcached"},
	"monitoring":    {"monitoring", "#Monitoring"},
	"searchcluster": {"search", "#SearchCluster"},
}

// verdict is what one tool said about one CR file.
type verdict struct {
	tool     string
	accepted bool
	output   string
}

// corpusFile is one CR file of the corpus test.
type corpusFile struct {
	path  string
	valid bool
	// group names the file's place in the test: valid, invalid (the files
	// of test/corpus) or generated (the cases test/corpus derives from the
	// CRDs, written to files for the test).
	group string
}

// TestCorpus runs every CR of test/corpus, the files and the cases it
// generates from the CRDs, through the three places a CR is checked: the
// API server with the generated CRD (kubectl apply --dry-run=server), the
// stock `cue vet` on the kind's api package, and `cuerator vet`. All three
// must accept every valid CR and refuse every invalid one, naming the field
// its "# rejects:" header gives.
func TestCorpus(t *testing.T) {
	cue := requireCueTool(t)
	cuerator := buildCuerator(t)
	schemasDir, err := filepath.Abs("../../schemas")
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "corpus")

	paths, err := filepath.Glob(filepath.Join(corpusDir, "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var files []corpusFile
	var valid, invalid int
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		group := filepath.Base(filepath.Dir(p))
		files = append(files, corpusFile{path: abs, valid: group == "valid", group: group})
		if group == "valid" {
			valid++
		} else {
			invalid++
		}
	}
	if valid < 30 || invalid < 60 {
		t.Fatalf("corpus has %d valid and %d invalid files; want at least 30 and 60", valid, invalid)
	}
	files = append(files, writeGeneratedCases(t)...)

	var mu sync.Mutex
	refusedBy := map[string]int{}
	invalidCRs := 0
	// The group returns when every parallel subtest has.
	t.Run("crs", func(t *testing.T) {
		for _, file := range files {
			name := filepath.Base(file.path)
			kind, ok := corpusKinds[strings.SplitN(name, "-", 2)[0]]
			if !ok {
				t.Fatalf("%s: the file name does not start with a kind (webapp-, database-, memcached-, monitoring-, searchcluster-)", name)
			}
			t.Run(file.group+"/"+name, func(t *testing.T) {
				t.Parallel()
				verdicts := []verdict{
					runTool("kubectl apply --dry-run=server", "kubectl", "--kubeconfig", testCluster.KubeconfigPath,
						"apply", "--dry-run=server", "-n", ns, "-f", file.path),
					// -C must come before the command; the file path is absolute
					// because -C changes the directory.
					runTool("cue vet", cue, "-C", schemasDir, "vet", "-d", kind.def, "./"+kind.dir+"/api", file.path),
					runTool("cuerator vet", cuerator, "vet", "-f", file.path),
				}
				var field string
				if !file.valid {
					field = rejectsHeader(t, file.path)
				}
				for _, v := range verdicts {
					switch {
					case file.valid && !v.accepted:
						t.Errorf("%s refuses a valid CR:\n%s", v.tool, v.output)
					case !file.valid && v.accepted:
						t.Errorf("%s accepts an invalid CR (want a refusal naming %s):\n%s", v.tool, field, v.output)
					case !file.valid && !corpus.Names(v.output, field):
						t.Errorf("%s refuses it without naming %s:\n%s", v.tool, field, v.output)
					}
				}
				if t.Failed() {
					t.Logf("verdicts: %s", summary(verdicts))
				}
				if file.valid {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				invalidCRs++
				for _, v := range verdicts {
					if !v.accepted && corpus.Names(v.output, field) {
						refusedBy[v.tool]++
					}
				}
			})
		}
	})
	for _, tool := range []string{"kubectl apply --dry-run=server", "cue vet", "cuerator vet"} {
		t.Logf("%s: %d of %d invalid CRs refused, naming the field", tool, refusedBy[tool], invalidCRs)
	}
}

// writeGeneratedCases writes the invalid cases that test/corpus derives
// from the CRDs into files with a "# rejects:" header, as the hand-written
// ones have.
func writeGeneratedCases(t *testing.T) []corpusFile {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := corpus.Generate(lib)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out []corpusFile
	for i, c := range cases {
		body, err := yaml.Marshal(c.CR.Object)
		if err != nil {
			t.Fatal(err)
		}
		// The kind comes first: the test picks the kind's definition by it.
		path := filepath.Join(dir, fmt.Sprintf("%s-%03d-%s.yaml", c.Kind, i, strings.ReplaceAll(strings.TrimPrefix(c.Name(), c.Kind+"/"), "/", "-")))
		content := fmt.Sprintf("# %s\n# rejects: %s\n%s", c.Name(), c.Field, body)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusFile{path: path, group: "generated"})
	}
	return out
}

func runTool(tool, name string, args ...string) verdict {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return verdict{tool: tool, accepted: err == nil, output: string(out)}
}

func summary(vs []verdict) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.tool + ": refuses"
		if v.accepted {
			parts[i] = v.tool + ": accepts"
		}
	}
	return strings.Join(parts, ", ")
}

// rejectsHeader reads the "# rejects: <field>" header of an invalid corpus file.
func rejectsHeader(t *testing.T, path string) string {
	t.Helper()
	field, err := corpus.RejectedField(path)
	if err != nil {
		t.Fatal(err)
	}
	return field
}

// requireCueTool returns the path of bin/cue. Outside CI a missing binary
// skips the test; in CI it fails it, so the check cannot silently vanish.
func requireCueTool(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(cueTool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		msg := "bin/cue is missing: run `make cue-tool` to install the cue CLI this test compares with"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// buildCuerator builds the CLI as a user gets it.
func buildCuerator(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cuerator")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cuerator/cuerator/cmd/cuerator").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// object is the part of a child the tests look at.
type object struct {
	Metadata struct {
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []struct {
			Kind       string `json:"kind"`
			UID        string `json:"uid"`
			Controller bool   `json:"controller"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
	// Data is a Secret's data, base64-encoded.
	Data map[string]string `json:"data"`
}

func (o object) controlledBy(uid string) bool {
	for _, r := range o.Metadata.OwnerReferences {
		if r.Controller && r.UID == uid {
			return true
		}
	}
	return false
}

// field reads a value below spec by a JSONPath-like path ("ports.0.port").
func (o object) field(path string) any {
	var cur any = o.Spec
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func getObject(t *testing.T, ns, resource, name string) object {
	t.Helper()
	var o object
	out := kubectl(t, "get", resource, name, "-n", ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("decode %s %s: %v", resource, name, err)
	}
	return o
}

func childExists(ns, resource, name string) bool {
	out, err := kubectlOut(testCluster.KubeconfigPath, "get", resource, name, "-n", ns, "--ignore-not-found", "-o", "name")
	return err == nil && strings.TrimSpace(out) != ""
}

// waitForStatus polls until the CR's status field has the wanted value.
func waitForStatus(t *testing.T, ns, resource, field, want string) {
	t.Helper()
	eventually(t, 90*time.Second, fmt.Sprintf("%s status.%s = %s", resource, field, want), func() error {
		out, err := kubectlOut(testCluster.KubeconfigPath, "get", resource, "-n", ns, "-o", "jsonpath={.status."+field+"}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if out != want {
			return fmt.Errorf("status.%s is %q", field, out)
		}
		return nil
	})
}

// inventoryKinds lists the kinds of the children the CR's status.inventory
// records (ids are namespace_name_group_kind).
func inventoryKinds(t *testing.T, ns, resource string) []string {
	t.Helper()
	out := kubectl(t, "get", resource, "-n", ns, "-o", `jsonpath={range .status.inventory[*]}{.id}{"\n"}{end}`)
	var kinds []string
	for _, id := range strings.Fields(out) {
		parts := strings.Split(id, "_")
		kinds = append(kinds, parts[len(parts)-2]+"/"+parts[len(parts)-1])
	}
	slices.Sort(kinds)
	return kinds
}

func waitForInventory(t *testing.T, ns, resource string, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, 60*time.Second, resource+" inventory", func() error {
		if got := inventoryKinds(t, ns, resource); !slices.Equal(got, want) {
			return fmt.Errorf("inventory %v, want %v", got, want)
		}
		return nil
	})
}

func crUID(t *testing.T, ns, resource string) string {
	return strings.TrimSpace(kubectl(t, "get", resource, "-n", ns, "-o", "jsonpath={.metadata.uid}"))
}

// The seed's WebApp, applied as written, serves its domain.
func TestWebAppSample(t *testing.T) {
	ns := namespace(t, "webapp-sample")
	kubectl(t, "apply", "-n", ns, "-f", webAppSample)
	const cr = "webapp/my-webapp"
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	uid := crUID(t, ns, cr)

	d := getObject(t, ns, "deployment", "my-webapp")
	if d.field("replicas") != 3.0 || d.field("template.spec.containers.0.image") != "nginx:alpine" ||
		d.field("template.spec.containers.0.ports.0.containerPort") != 80.0 {
		t.Errorf("Deployment spec: replicas %v, image %v, containerPort %v", d.field("replicas"),
			d.field("template.spec.containers.0.image"), d.field("template.spec.containers.0.ports.0.containerPort"))
	}
	if !d.controlledBy(uid) {
		t.Errorf("Deployment is not controlled by the WebApp: %+v", d.Metadata.OwnerReferences)
	}

	s := getObject(t, ns, "service", "my-webapp")
	if s.field("type") != "ClusterIP" || s.field("ports.0.port") != 80.0 || s.field("ports.0.targetPort") != 80.0 {
		t.Errorf("Service spec: %v", s.Spec)
	}

	i := getObject(t, ns, "ingress", "my-webapp")
	if i.field("rules.0.host") != "example.com" || i.field("rules.0.http.paths.0.backend.service.name") != "my-webapp" {
		t.Errorf("Ingress spec: %v", i.Spec)
	}
	if i.field("tls") != nil {
		t.Errorf("Ingress has tls, the sample asks for none: %v", i.field("tls"))
	}

	waitForStatus(t, ns, cr, "url", "http://example.com")
	waitForStatus(t, ns, cr, "readyReplicas", "3")
	// Monitoring is off in the sample: no ServiceMonitor among the children.
	waitForInventory(t, ns, cr, "apps/Deployment", "/Service", "networking.k8s.io/Ingress")

	t.Run("tls", func(t *testing.T) {
		kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"tls":{"secretName":"example-com-tls"}}}`)
		eventually(t, 30*time.Second, "Ingress serves TLS", func() error {
			i := getObject(t, ns, "ingress", "my-webapp")
			if i.field("tls.0.secretName") != "example-com-tls" || i.field("tls.0.hosts.0") != "example.com" {
				return fmt.Errorf("tls %v", i.field("tls"))
			}
			return nil
		})
		waitForStatus(t, ns, cr, "url", "https://example.com")
	})
}

// Monitoring on creates a ServiceMonitor; monitoring off removes it. The
// test cluster has no Prometheus Operator: unless the cluster already serves
// ServiceMonitors, the test installs a stand-in for their CRD (the real
// name and a schema that keeps every field) and removes it afterwards.
func TestWebAppMonitoring(t *testing.T) {
	const crd = "crd/servicemonitors.monitoring.coreos.com"
	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", crd); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		create := exec.CommandContext(ctx, "kubectl", "--kubeconfig", testCluster.KubeconfigPath, "create", "-f", "-")
		create.Stdin = strings.NewReader(serviceMonitorCRD)
		if out, err := create.CombinedOutput(); err != nil {
			t.Fatalf("install the ServiceMonitor CRD: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", crd, "--wait=false") })
	}
	kubectl(t, "wait", "--for=condition=Established", crd, "--timeout=60s")

	ns := namespace(t, "webapp-monitoring")
	kubectl(t, "apply", "-n", ns, "-f", webAppSample)
	const cr = "webapp/my-webapp"
	kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"monitoring":{"enabled":true}}}`)
	eventually(t, 60*time.Second, "ServiceMonitor created", func() error {
		if !childExists(ns, "servicemonitor", "my-webapp") {
			return fmt.Errorf("no ServiceMonitor my-webapp")
		}
		return nil
	})
	sm := getObject(t, ns, "servicemonitor", "my-webapp")
	if sm.field("endpoints.0.port") != "http" || sm.field("endpoints.0.path") != "/metrics" {
		t.Errorf("ServiceMonitor endpoints: %v", sm.field("endpoints"))
	}
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")

	kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"monitoring":{"enabled":false}}}`)
	eventually(t, 60*time.Second, "ServiceMonitor removed", func() error {
		if childExists(ns, "servicemonitor", "my-webapp") {
			return fmt.Errorf("ServiceMonitor my-webapp is still there")
		}
		return nil
	})
}

// The seed's Database, applied as written, runs PostgreSQL on a bound
// volume, with credentials that stay put and nightly backups.
func TestDatabaseSample(t *testing.T) {
	ns := namespace(t, "database-sample")
	kubectl(t, "apply", "-n", ns, "-f", databaseSample)
	const cr = "database/my-db"
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")
	uid := crUID(t, ns, cr)

	sts := getObject(t, ns, "statefulset", "my-db")
	if sts.field("template.spec.containers.0.image") != "postgres:13" || sts.field("serviceName") != "my-db-headless" ||
		sts.field("volumeClaimTemplates.0.spec.resources.requests.storage") != "10Gi" {
		t.Errorf("StatefulSet spec: image %v, serviceName %v, volume %v", sts.field("template.spec.containers.0.image"),
			sts.field("serviceName"), sts.field("volumeClaimTemplates.0.spec.resources.requests.storage"))
	}
	if !sts.controlledBy(uid) {
		t.Errorf("StatefulSet is not controlled by the Database: %+v", sts.Metadata.OwnerReferences)
	}
	kubectl(t, "wait", "-n", ns, "--for=jsonpath={.status.phase}=Bound", "pvc/data-my-db-0", "--timeout=60s")

	if h := getObject(t, ns, "service", "my-db-headless"); h.field("clusterIP") != "None" || h.field("ports.0.port") != 5432.0 {
		t.Errorf("headless Service spec: %v", h.Spec)
	}
	if s := getObject(t, ns, "service", "my-db"); s.field("type") != "ClusterIP" || s.field("ports.0.port") != 5432.0 {
		t.Errorf("client Service spec: %v", s.Spec)
	}

	secret := getObject(t, ns, "secret", "my-db-credentials")
	if secret.Metadata.Annotations["cuerator.dev/apply"] != "create-only" {
		t.Errorf("Secret annotations %v: want cuerator.dev/apply: create-only", secret.Metadata.Annotations)
	}
	password := secret.Data["password"]
	if password == "" || secret.Data["username"] == "" {
		t.Fatalf("Secret data: username %q, password %q", secret.Data["username"], password)
	}

	if job := getObject(t, ns, "cronjob", "my-db-backup"); job.field("schedule") != "0 2 * * *" {
		t.Errorf("CronJob schedule %v", job.field("schedule"))
	}
	kubectl(t, "wait", "-n", ns, "--for=jsonpath={.status.phase}=Bound", "pvc/my-db-backup", "--timeout=60s")

	waitForStatus(t, ns, cr, "endpoint", "my-db."+ns+".svc:5432")
	waitForStatus(t, ns, cr, "readyReplicas", "1")
	waitForInventory(t, ns, cr, "apps/StatefulSet", "/Service", "/Service", "/Secret", "batch/CronJob", "/PersistentVolumeClaim")

	t.Run("the password survives re-renders", func(t *testing.T) {
		// A new generation renders again, with fresh random text.
		kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"backup":{"schedule":"30 3 * * *"}}}`)
		eventually(t, 30*time.Second, "CronJob rescheduled", func() error {
			if s := getObject(t, ns, "cronjob", "my-db-backup").field("schedule"); s != "30 3 * * *" {
				return fmt.Errorf("schedule %v", s)
			}
			return nil
		})
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=60s")
		if got := getObject(t, ns, "secret", "my-db-credentials").Data["password"]; got != password {
			t.Errorf("the password changed on a re-render")
		}
	})

	t.Run("backup off", func(t *testing.T) {
		kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"backup":{"enabled":false}}}`)
		eventually(t, 60*time.Second, "CronJob removed", func() error {
			if childExists(ns, "cronjob", "my-db-backup") {
				return fmt.Errorf("CronJob my-db-backup is still there")
			}
			return nil
		})
		// The dumps outlive the schedule: cuerator retains PVCs it stops producing.
		if !childExists(ns, "pvc", "my-db-backup") {
			t.Errorf("the backup volume was deleted with the CronJob")
		}
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=60s")
	})
	t.Run("the storage size cannot change", func(t *testing.T) {
		// A StatefulSet cannot resize the volumes it claimed: the API server
		// refuses the edit, rather than admitting it and the operator failing
		// every apply after it.
		sample, err := os.ReadFile(databaseSample)
		if err != nil {
			t.Fatal(err)
		}
		resized := strings.Replace(string(sample), "size: 10Gi", "size: 20Gi", 1)
		if resized == string(sample) {
			t.Fatal("the sample no longer sets size: 10Gi")
		}
		out := kubectlFails(t, resized, "apply", "-n", ns, "-f", "-")
		if !strings.Contains(out, "spec.storage.size: is immutable") {
			t.Errorf("kubectl apply of a resized Database: want a refusal naming spec.storage.size:\n%s", out)
		}
		if size := kubectl(t, "get", cr, "-n", ns, "-o", "jsonpath={.spec.storage.size}"); size != "10Gi" {
			t.Errorf("spec.storage.size is %q after the refused edit", size)
		}
		if size := getObject(t, ns, "statefulset", "my-db").field("volumeClaimTemplates.0.spec.resources.requests.storage"); size != "10Gi" {
			t.Errorf("the StatefulSet claims %v", size)
		}
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=60s")
	})
}

const serviceMonitorCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names:
    kind: ServiceMonitor
    listKind: ServiceMonitorList
    plural: servicemonitors
    singular: servicemonitor
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// kubectl explain shows the descriptions the CRDs carry: prose about the
// kind and each field, not the names of CUE definitions.
func TestExplainReadsAsProse(t *testing.T) {
	for _, tc := range []struct{ field, want string }{
		{"webapp", "A web application:"},
		{"webapp.spec", "The desired state of a web application."},
		{"database.status", "The observed state of a database."},
		{"memcached.status.conditions.type", "type is Ready, Reconciling or Stalled."},
	} {
		// The API server publishes a new CRD's schema within seconds.
		eventually(t, 30*time.Second, "kubectl explain "+tc.field, func() error {
			out, err := kubectlOut(testCluster.KubeconfigPath, "explain", tc.field)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(out, tc.want) || strings.Contains(out, "#Spec") || strings.Contains(out, "#Status") {
				return fmt.Errorf("want %q and no CUE definition name:\n%s", tc.want, out)
			}
			return nil
		})
	}
}

// The names the issue names: a WebApp web.app (not a DNS-1035 label, so not
// a Service name) and a Database of 50 characters (too long for its backup
// CronJob) are refused by kubectl apply, naming metadata.name.
func TestNamesTheTemplatesRefuseAreRefusedByKubectlApply(t *testing.T) {
	ns := namespace(t, "bad-names")
	for _, tc := range []struct{ sample, from, to string }{
		{webAppSample, "name: my-webapp", "name: web.app"},
		{databaseSample, "name: my-db", "name: " + strings.Repeat("d", 50)},
	} {
		sample, err := os.ReadFile(tc.sample)
		if err != nil {
			t.Fatal(err)
		}
		manifest := strings.Replace(string(sample), tc.from, tc.to, 1)
		if manifest == string(sample) {
			t.Fatalf("%s has no %q", tc.sample, tc.from)
		}
		out := kubectlFails(t, manifest, "apply", "-n", ns, "-f", "-")
		if !strings.Contains(out, "metadata.name") {
			t.Errorf("kubectl apply of %s: refused without naming metadata.name:\n%s", tc.to, out)
		}
	}
}
