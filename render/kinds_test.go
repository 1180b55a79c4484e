package render_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/corpus"
)

var (
	webAppGVK   = schema.GroupVersionKind{Group: "apps.example.com", Version: "v1alpha1", Kind: "WebApp"}
	databaseGVK = schema.GroupVersionKind{Group: "database.example.com", Version: "v1alpha1", Kind: "Database"}
)

const (
	webAppSample   = "../examples/webapp-sample.yaml"
	databaseSample = "../examples/database-sample.yaml"
)

// renderSample renders a seed sample as the operator would: in a namespace,
// with a UID, and after changing its spec with mutate (if not nil).
func renderSample(t *testing.T, gvk schema.GroupVersionKind, path string, mutate func(spec map[string]any)) (*unstructured.Unstructured, *render.Rendered) {
	t.Helper()
	kind := loadLibrary(t).Kind(gvk)
	if kind == nil {
		t.Fatalf("%s kind not loaded", gvk.Kind)
	}
	cr := readCR(t, path)
	cr.SetNamespace("team-a")
	cr.SetUID("5f1c3a8e-0000-4000-8000-000000000002")
	if mutate != nil {
		mutate(cr.Object["spec"].(map[string]any))
	}
	out, err := kind.Render(cr)
	if err != nil {
		t.Fatalf("render %s: %v", path, err)
	}
	return cr, out
}

// children maps each rendered child by its template key.
func children(out *render.Rendered) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for i, key := range out.Keys {
		m[key] = out.Objects[i]
	}
	return m
}

func wantKeys(t *testing.T, out *render.Rendered, want ...string) map[string]*unstructured.Unstructured {
	t.Helper()
	got := children(out)
	var names []string
	for k := range got {
		names = append(names, k)
	}
	if len(got) != len(want) {
		t.Fatalf("children %v, want %v", names, want)
	}
	for _, k := range want {
		if got[k] == nil {
			t.Fatalf("children %v, want %v", names, want)
		}
	}
	return got
}

// at returns the value at a path such as "spec.ports[0].port" (keys
// containing dots, such as label names, are read with GetLabels instead).
func at(t *testing.T, obj *unstructured.Unstructured, path string) any {
	t.Helper()
	var cur any = obj.Object
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%s %s: %s: not an object", obj.GetKind(), path, key)
			}
			cur = m[key]
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			l, ok := cur.([]any)
			if err != nil || !ok || i >= len(l) {
				t.Fatalf("%s %s: no element [%s]", obj.GetKind(), path, idx)
			}
			cur = l[i]
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return cur
}

func wantAt(t *testing.T, obj *unstructured.Unstructured, path string, want any) {
	t.Helper()
	if got := at(t, obj, path); !reflect.DeepEqual(got, want) {
		t.Errorf("%s %s: %s = %#v, want %#v", obj.GetKind(), obj.GetName(), path, got, want)
	}
}

// selects reports whether a (matchLabels) selector picks objects with labels.
func selects(selector any, labels map[string]string) bool {
	sel, _ := selector.(map[string]any)
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func wantSelects(t *testing.T, what string, selector any, labels map[string]string) {
	t.Helper()
	if !selects(selector, labels) {
		t.Errorf("%s: selector %v does not select labels %v", what, selector, labels)
	}
}

// wantSelectorString checks that a selector in label selector syntax (the
// scale subresource's status.selector) selects the pods with labels.
func wantSelectorString(t *testing.T, selector any, pods map[string]string) {
	t.Helper()
	str, _ := selector.(string)
	sel, err := labels.Parse(str)
	if err != nil || str == "" {
		t.Fatalf("selector %q: %v", str, err)
	}
	if !sel.Matches(labels.Set(pods)) {
		t.Errorf("selector %q does not select the pods' labels %v", str, pods)
	}
}

func podLabels(t *testing.T, workload *unstructured.Unstructured, templatePath ...string) map[string]string {
	t.Helper()
	l, _, err := unstructured.NestedStringMap(workload.Object, append(templatePath, "metadata", "labels")...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// wantRestricted checks every container of a pod spec against the Pod
// Security Standards' restricted profile, and that it requests resources.
func wantRestricted(t *testing.T, workload *unstructured.Unstructured, podSpecPath ...string) {
	t.Helper()
	spec, _, _ := unstructured.NestedMap(workload.Object, podSpecPath...)
	if spec["securityContext"].(map[string]any)["runAsNonRoot"] != true {
		t.Errorf("%s: pod may run as root", workload.GetKind())
	}
	for _, c := range spec["containers"].([]any) {
		c := c.(map[string]any)
		sc := c["securityContext"].(map[string]any)
		if sc["runAsNonRoot"] != true || sc["allowPrivilegeEscalation"] != false ||
			!reflect.DeepEqual(sc["capabilities"], map[string]any{"drop": []any{"ALL"}}) ||
			!reflect.DeepEqual(sc["seccompProfile"], map[string]any{"type": "RuntimeDefault"}) {
			t.Errorf("%s container %s: securityContext %v is not restricted", workload.GetKind(), c["name"], sc)
		}
		req, _, _ := unstructured.NestedStringMap(c, "resources", "requests")
		if req["cpu"] == "" || req["memory"] == "" {
			t.Errorf("%s container %s: requests %v", workload.GetKind(), c["name"], req)
		}
	}
}

func wantOwnedBy(t *testing.T, child, cr *unstructured.Unstructured) {
	t.Helper()
	refs := child.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != cr.GetUID() || refs[0].Kind != cr.GetKind() || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("%s %s: ownerReferences %v", child.GetKind(), child.GetName(), refs)
	}
}

func TestRenderWebAppSample(t *testing.T) {
	cr, out := renderSample(t, webAppGVK, webAppSample, nil)
	c := wantKeys(t, out, "deployment", "service", "ingress")

	d := c["deployment"]
	wantAt(t, d, "metadata.name", "my-webapp")
	wantAt(t, d, "metadata.namespace", "team-a")
	wantAt(t, d, "spec.replicas", int64(3))
	wantAt(t, d, "spec.template.spec.containers[0].image", "nginx:alpine")
	wantAt(t, d, "spec.template.spec.containers[0].ports[0]", map[string]any{"name": "http", "containerPort": int64(80), "protocol": "TCP"})
	// From the embedded team manifest, schemas/webapp/deployment.yaml.
	wantAt(t, d, "spec.revisionHistoryLimit", int64(5))
	wantAt(t, d, "spec.template.spec.containers[0].readinessProbe.tcpSocket.port", "http")
	wantSelects(t, "Deployment", at(t, d, "spec.selector.matchLabels"), podLabels(t, d, "spec", "template"))
	wantRestricted(t, d, "spec", "template", "spec")
	wantOwnedBy(t, d, cr)

	s := c["service"]
	wantAt(t, s, "metadata.name", "my-webapp")
	wantAt(t, s, "spec.type", "ClusterIP")
	wantAt(t, s, "spec.ports[0]", map[string]any{"name": "http", "port": int64(80), "targetPort": int64(80), "protocol": "TCP"})
	wantSelects(t, "Service", at(t, s, "spec.selector"), podLabels(t, d, "spec", "template"))
	wantOwnedBy(t, s, cr)

	i := c["ingress"]
	wantAt(t, i, "spec.rules[0].host", "example.com")
	wantAt(t, i, "spec.rules[0].http.paths[0]", map[string]any{
		"path": "/", "pathType": "Prefix",
		"backend": map[string]any{"service": map[string]any{"name": "my-webapp", "port": map[string]any{"name": "http"}}},
	})
	if tls := at(t, i, "spec.tls"); tls != nil {
		t.Errorf("Ingress has tls without spec.tls: %v", tls)
	}
	wantOwnedBy(t, i, cr)

	for _, child := range out.Objects {
		l := child.GetLabels()
		for k, v := range map[string]string{
			"app.kubernetes.io/name":       "webapp",
			"app.kubernetes.io/instance":   "my-webapp",
			"app.kubernetes.io/managed-by": "cuerator",
			"app.kubernetes.io/part-of":    "my-webapp",
		} {
			if l[k] != v {
				t.Errorf("%s: label %s=%q, want %q", child.GetKind(), k, l[k], v)
			}
		}
	}

	status, err := out.Status(render.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	// replicas and selector are what the scale subresource reports.
	selector := "app.kubernetes.io/name=webapp,app.kubernetes.io/instance=my-webapp"
	if want := map[string]any{"url": "http://example.com", "readyReplicas": float64(0), "replicas": float64(0), "selector": selector}; !reflect.DeepEqual(status, want) {
		t.Errorf("status before the Deployment reports = %v, want %v", status, want)
	}
	status, err = out.Status(render.Observed{Children: map[string]any{
		"deployment": map[string]any{"status": map[string]any{"replicas": int64(3), "readyReplicas": int64(2)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if status["readyReplicas"] != float64(2) || status["replicas"] != float64(3) {
		t.Errorf("status.readyReplicas = %v, status.replicas = %v, want 2 and 3", status["readyReplicas"], status["replicas"])
	}
	wantSelectorString(t, status["selector"], podLabels(t, children(out)["deployment"], "spec", "template"))
}

func TestRenderWebAppDefaults(t *testing.T) {
	_, out := renderSample(t, webAppGVK, webAppSample, func(spec map[string]any) {
		delete(spec, "replicas")
		delete(spec, "port")
	})
	c := children(out)
	wantAt(t, c["deployment"], "spec.replicas", int64(1))
	wantAt(t, c["deployment"], "spec.template.spec.containers[0].ports[0].containerPort", int64(80))
	wantAt(t, c["service"], "spec.ports[0].targetPort", int64(80))
}

func TestRenderWebAppPort(t *testing.T) {
	_, out := renderSample(t, webAppGVK, webAppSample, func(spec map[string]any) { spec["port"] = int64(8080) })
	c := children(out)
	wantAt(t, c["deployment"], "spec.template.spec.containers[0].ports[0].containerPort", int64(8080))
	wantAt(t, c["service"], "spec.ports[0].port", int64(80))
	wantAt(t, c["service"], "spec.ports[0].targetPort", int64(8080))
}

func TestRenderWebAppMonitoring(t *testing.T) {
	_, out := renderSample(t, webAppGVK, webAppSample, func(spec map[string]any) {
		spec["monitoring"] = map[string]any{"enabled": true}
	})
	c := wantKeys(t, out, "deployment", "service", "ingress", "serviceMonitor")
	sm := c["serviceMonitor"]
	wantAt(t, sm, "apiVersion", "monitoring.coreos.com/v1")
	wantAt(t, sm, "metadata.name", "my-webapp")
	wantAt(t, sm, "spec.endpoints[0].port", "http")
	wantAt(t, sm, "spec.endpoints[0].path", "/metrics")
	// The ServiceMonitor selects the Service by its labels, and scrapes the
	// port the Service names.
	wantSelects(t, "ServiceMonitor", at(t, sm, "spec.selector.matchLabels"), c["service"].GetLabels())
	wantAt(t, c["service"], "spec.ports[0].name", "http")

	_, out = renderSample(t, webAppGVK, webAppSample, func(spec map[string]any) {
		spec["monitoring"] = map[string]any{"enabled": false}
	})
	wantKeys(t, out, "deployment", "service", "ingress")
}

func TestRenderWebAppTLS(t *testing.T) {
	_, out := renderSample(t, webAppGVK, webAppSample, func(spec map[string]any) {
		spec["tls"] = map[string]any{"secretName": "example-com-tls"}
	})
	c := wantKeys(t, out, "deployment", "service", "ingress")
	wantAt(t, c["ingress"], "spec.tls", []any{map[string]any{"hosts": []any{"example.com"}, "secretName": "example-com-tls"}})
	status, err := out.Status(render.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	if status["url"] != "https://example.com" {
		t.Errorf("status.url = %v, want https://example.com", status["url"])
	}
}

func TestRenderDatabaseSample(t *testing.T) {
	cr, out := renderSample(t, databaseGVK, databaseSample, nil)
	c := wantKeys(t, out, "statefulset", "headless", "service", "credentials", "backup", "backupVolume")

	secret := c["credentials"]
	wantAt(t, secret, "metadata.name", "my-db-credentials")
	wantAt(t, secret, "type", "kubernetes.io/basic-auth")
	wantAt(t, secret, "stringData.username", "postgres")
	if a := secret.GetAnnotations()["cuerator.dev/apply"]; a != "create-only" {
		t.Errorf("Secret annotation cuerator.dev/apply = %q, want create-only: a later render would change the password", a)
	}
	if pw, _ := at(t, secret, "stringData.password").(string); len(pw) < 20 {
		t.Errorf("password %q: want at least 20 random characters", pw)
	}
	// The credentials live as long as the data they open: kept when the CR
	// goes, like the StatefulSet's claims, and never drawn anew while the
	// data claim exists.
	if refs := secret.GetOwnerReferences(); len(refs) != 0 {
		t.Errorf("Secret my-db-credentials: ownerReferences %v: the garbage collector would delete it with its CR while its data stays", refs)
	}
	if p := secret.GetAnnotations()["cuerator.dev/prune"]; p != "Retain" {
		t.Errorf("Secret annotation cuerator.dev/prune = %q, want Retain", p)
	}
	if n := secret.GetAnnotations()["cuerator.dev/needed-by"]; n != "v1/PersistentVolumeClaim/data-my-db-0" {
		t.Errorf("Secret annotation cuerator.dev/needed-by = %q, want the StatefulSet's data claim", n)
	}

	sts := c["statefulset"]
	wantAt(t, sts, "metadata.name", "my-db")
	wantAt(t, sts, "spec.replicas", int64(1))
	wantAt(t, sts, "spec.serviceName", "my-db-headless")
	wantAt(t, sts, "spec.template.spec.containers[0].image", "postgres:13")
	wantAt(t, sts, "spec.template.spec.containers[0].ports[0].containerPort", int64(5432))
	wantAt(t, sts, "spec.volumeClaimTemplates[0].metadata.name", "data")
	wantAt(t, sts, "spec.volumeClaimTemplates[0].spec.resources.requests.storage", "10Gi")
	wantAt(t, sts, "spec.template.spec.containers[0].volumeMounts[0]", map[string]any{"name": "data", "mountPath": "/var/lib/postgresql/data"})
	env := map[string]any{}
	for _, e := range at(t, sts, "spec.template.spec.containers[0].env").([]any) {
		e := e.(map[string]any)
		env[e["name"].(string)] = e
	}
	for name, key := range map[string]string{"POSTGRES_USER": "username", "POSTGRES_PASSWORD": "password"} {
		want := map[string]any{"name": name, "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "my-db-credentials", "key": key}}}
		if !reflect.DeepEqual(env[name], want) {
			t.Errorf("env %s = %v, want %v", name, env[name], want)
		}
	}
	dbPods := podLabels(t, sts, "spec", "template")
	wantSelects(t, "StatefulSet", at(t, sts, "spec.selector.matchLabels"), dbPods)
	wantRestricted(t, sts, "spec", "template", "spec")
	wantOwnedBy(t, sts, cr)

	wantAt(t, c["headless"], "metadata.name", "my-db-headless")
	wantAt(t, c["headless"], "spec.clusterIP", "None")
	wantAt(t, c["headless"], "spec.ports[0].port", int64(5432))
	wantSelects(t, "headless Service", at(t, c["headless"], "spec.selector"), dbPods)
	wantAt(t, c["service"], "metadata.name", "my-db")
	wantAt(t, c["service"], "spec.type", "ClusterIP")
	wantAt(t, c["service"], "spec.ports[0].port", int64(5432))
	wantAt(t, c["service"], "spec.ports[0].targetPort", "postgresql")
	wantSelects(t, "client Service", at(t, c["service"], "spec.selector"), dbPods)

	job := c["backup"]
	wantAt(t, job, "metadata.name", "my-db-backup")
	wantAt(t, job, "spec.schedule", "0 2 * * *")
	wantAt(t, job, "spec.concurrencyPolicy", "Forbid")
	pod := []string{"spec", "jobTemplate", "spec", "template"}
	wantAt(t, job, "spec.jobTemplate.spec.template.spec.containers[0].image", "postgres:13")
	wantAt(t, job, "spec.jobTemplate.spec.template.spec.volumes[0].persistentVolumeClaim.claimName", "my-db-backup")
	if cmd := at(t, job, "spec.jobTemplate.spec.template.spec.containers[0].command[2]").(string); !strings.Contains(cmd, "pg_dump") {
		t.Errorf("backup command does not run pg_dump: %q", cmd)
	}
	wantRestricted(t, job, append(pod, "spec")...)
	// A running backup must not receive the database's traffic.
	for _, svc := range []string{"service", "headless"} {
		if selects(at(t, c[svc], "spec.selector"), podLabels(t, job, pod...)) {
			t.Errorf("the %s Service selects the backup pods too", svc)
		}
	}

	pvc := c["backupVolume"]
	wantAt(t, pvc, "metadata.name", "my-db-backup")
	wantAt(t, pvc, "spec.resources.requests.storage", "10Gi")
	wantAt(t, pvc, "spec.accessModes", []any{"ReadWriteOnce"})
}

func TestRenderDatabaseStatus(t *testing.T) {
	_, out := renderSample(t, databaseGVK, databaseSample, nil)
	status, err := out.Status(render.Observed{Children: map[string]any{
		"statefulset": map[string]any{"status": map[string]any{"replicas": int64(1), "readyReplicas": int64(1)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"endpoint": "my-db.team-a.svc:5432", "secretName": "my-db-credentials", "readyReplicas": float64(1)}
	if !reflect.DeepEqual(status, want) {
		t.Errorf("status = %v, want %v", status, want)
	}
}

func TestRenderDatabaseBackupOff(t *testing.T) {
	_, out := renderSample(t, databaseGVK, databaseSample, func(spec map[string]any) {
		spec["backup"] = map[string]any{"enabled": false}
	})
	wantKeys(t, out, "statefulset", "headless", "service", "credentials")

	_, out = renderSample(t, databaseGVK, databaseSample, func(spec map[string]any) { delete(spec, "backup") })
	wantKeys(t, out, "statefulset", "headless", "service", "credentials")
}

func TestRenderDatabaseDefaultSchedule(t *testing.T) {
	_, out := renderSample(t, databaseGVK, databaseSample, func(spec map[string]any) {
		spec["backup"] = map[string]any{"enabled": true}
	})
	wantAt(t, children(out)["backup"], "spec.schedule", "0 2 * * *")
}

// The CR's app.kubernetes.io/part-of label groups its children with those
// of the other CRs of an application.
func TestRenderPartOfFromCR(t *testing.T) {
	lib := loadLibrary(t)
	for _, sample := range []string{webAppSample, databaseSample} {
		cr := readCR(t, sample)
		cr.SetNamespace("team-a")
		cr.SetLabels(map[string]string{"app.kubernetes.io/part-of": "shop"})
		out, err := lib.RenderCR(cr)
		if err != nil {
			t.Fatal(err)
		}
		for _, child := range out.Objects {
			if got := child.GetLabels()["app.kubernetes.io/part-of"]; got != "shop" {
				t.Errorf("%s %s: part-of = %q, want shop", cr.GetKind(), child.GetKind(), got)
			}
		}
	}
}

// Each bad spec is refused with a message naming the field, before any
// object is produced.
func TestRenderKindsRejectBadSpecs(t *testing.T) {
	lib := loadLibrary(t)
	set := func(path string, v any) func(*unstructured.Unstructured) {
		return func(cr *unstructured.Unstructured) {
			if err := unstructured.SetNestedField(cr.Object, v, strings.Split(path, ".")...); err != nil {
				t.Fatal(err)
			}
		}
	}
	drop := func(path string) func(*unstructured.Unstructured) {
		return func(cr *unstructured.Unstructured) {
			unstructured.RemoveNestedField(cr.Object, strings.Split(path, ".")...)
		}
	}
	rename := func(name string) func(*unstructured.Unstructured) {
		return func(cr *unstructured.Unstructured) { cr.SetName(name) }
	}
	for _, tc := range []struct {
		name, sample, field string
		mutate              func(*unstructured.Unstructured)
	}{
		{"webapp without image", webAppSample, "spec.image", drop("spec.image")},
		{"webapp without domain", webAppSample, "spec.domain", drop("spec.domain")},
		{"webapp replicas 0", webAppSample, "spec.replicas", set("spec.replicas", int64(0))},
		{"webapp replicas 101", webAppSample, "spec.replicas", set("spec.replicas", int64(101))},
		{"webapp port 70000", webAppSample, "spec.port", set("spec.port", int64(70000))},
		{"webapp domain with scheme", webAppSample, "spec.domain", set("spec.domain", "https://example.com")},
		{"webapp tls without secretName", webAppSample, "spec.tls.secretName", set("spec.tls", map[string]any{})},
		{"webapp monitoring typo", webAppSample, "spec.monitoring.enable", set("spec.monitoring", map[string]any{"enable": true})},
		// Rules of the kind's #Name on metadata.name: the name is also the
		// Service's, which must be a DNS-1035 label.
		{"webapp name with a dot", webAppSample, "metadata.name", rename("my.webapp")},
		{"webapp name starting with a digit", webAppSample, "metadata.name", rename("1webapp")},
		{"database type unsupported", databaseSample, "spec.type", set("spec.type", "oracle")},
		{"database mysql without a full version", databaseSample, "spec.version", set("spec.type", "mysql")},
		{"database version unquoted", databaseSample, "spec.version", set("spec.version", int64(13))},
		{"database version latest", databaseSample, "spec.version", set("spec.version", "latest")},
		{"database without storage", databaseSample, "spec.storage.size", drop("spec.storage")},
		{"database size 10GB", databaseSample, "spec.storage.size", set("spec.storage.size", "10GB")},
		{"database schedule minute 60", databaseSample, "spec.backup.schedule", set("spec.backup.schedule", "60 2 * * *")},
		{"database schedule 4 fields", databaseSample, "spec.backup.schedule", set("spec.backup.schedule", "0 2 * *")},
		{"database backup enabled as string", databaseSample, "spec.backup.enabled", set("spec.backup.enabled", "true")},
		// "<name>-backup" names a CronJob, at most 52 characters.
		{"database name too long", databaseSample, "metadata.name", rename(strings.Repeat("d", 46))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := readCR(t, tc.sample)
			cr.SetNamespace("team-a")
			tc.mutate(cr)
			_, err := lib.RenderCR(cr)
			wantRefusalNaming(t, err, tc.field)
		})
	}
}

// Every corpus file renders when valid and is refused naming its field when
// invalid; test/e2e checks the API server and `cue vet` agree.
func TestCorpusRenders(t *testing.T) {
	lib := loadLibrary(t)
	files, _ := filepath.Glob("../test/corpus/*/*.yaml")
	if len(files) == 0 {
		t.Fatal("no corpus files")
	}
	for _, path := range files {
		valid := filepath.Base(filepath.Dir(path)) == "valid"
		t.Run(strings.TrimPrefix(path, "../test/corpus/"), func(t *testing.T) {
			cr := readCR(t, path)
			cr.SetNamespace("corpus")
			_, err := lib.RenderCR(cr)
			switch {
			case valid && err != nil:
				t.Errorf("valid CR refused: %v", err)
			case !valid:
				wantRefusalNaming(t, err, rejectedField(t, path))
			}
		})
	}
}

// Every generated invalid CR (test/corpus/generate.go) is refused as
// `cuerator vet` refuses it, naming the field it breaks, without a panic.
func TestGeneratedInvalidCRsRefused(t *testing.T) {
	lib := loadLibrary(t)
	cases, err := corpus.Generate(lib)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			cr := c.CR.DeepCopy()
			cr.SetNamespace("corpus")
			wantRefusalNaming(t, renderRecovering(lib, cr), c.Field)
		})
	}
}

// renderRecovering renders cr as `cuerator vet` does; a panic becomes an
// error carrying its stack, so that one case fails rather than the run.
func renderRecovering(lib *render.Library, cr *unstructured.Unstructured) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	_, err = lib.RenderCR(cr)
	return err
}

// A value out of a defaulted bound is refused for the bound alone, not
// also for the default it conflicts with.
func TestRefusalOfADefaultedBoundNamesTheBound(t *testing.T) {
	lib := loadLibrary(t)
	cr := readCR(t, webAppSample)
	cr.SetNamespace("team-a")
	if err := unstructured.SetNestedField(cr.Object, int64(200), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	_, err := lib.RenderCR(cr)
	var verr *render.ValidationError
	if !errors.As(err, &verr) || len(verr.Errs) != 1 || verr.Errs[0].Path != "spec.replicas" || !strings.HasPrefix(verr.Errs[0].Message, "invalid value 200 (out of bound <=100)") {
		t.Errorf("want one error, spec.replicas out of bound <=100: %v", err)
	}
}

// wantRefusalNaming wants err to be a ValidationError with a field error
// at field or below it.
func wantRefusalNaming(t *testing.T, err error, field string) {
	t.Helper()
	var verr *render.ValidationError
	if !errors.As(err, &verr) {
		t.Errorf("want a refusal naming %s, got %v", field, err)
		return
	}
	for _, fe := range verr.Errs {
		if corpus.Names(fe.Path, field) {
			return
		}
	}
	t.Errorf("refusal does not name %s: %v", field, err)
}

// rejectedField reads the "# rejects: <field>" header of an invalid corpus file.
func rejectedField(t *testing.T, path string) string {
	t.Helper()
	field, err := corpus.RejectedField(path)
	if err != nil {
		t.Fatal(err)
	}
	return field
}
