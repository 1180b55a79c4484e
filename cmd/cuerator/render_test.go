package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/cuerator/cuerator/render"
)

// The seed's samples of the Prometheus Operator, ECK and the MySQL Operator
// (testdata/seed) are what `cuerator render` makes of one of our CRs: the
// child holds every field of the sample, with the sample's value.
func TestRenderCoversTheSeedsOperatorSamples(t *testing.T) {
	for _, tc := range []struct{ cr, sample string }{
		{"../../examples/monitoring-sample.yaml", "testdata/seed/prometheus.yaml"},
		{"../../examples/searchcluster-sample.yaml", "testdata/seed/elasticsearch.yaml"},
		{"testdata/seed/database-mysql.yaml", "testdata/seed/innodbcluster.yaml"},
	} {
		t.Run(filepath.Base(tc.sample), func(t *testing.T) {
			sample := readManifests(t, tc.sample)[0]
			got := renderedChild(t, tc.cr, sample.GetAPIVersion(), sample.GetKind())
			if got.GetName() != sample.GetName() {
				t.Errorf("%s named %q, the sample %q", sample.GetKind(), got.GetName(), sample.GetName())
			}
			if diff := missingFrom(sample.Object["spec"], got.Object["spec"], "spec"); diff != "" {
				t.Errorf("rendered %s lacks the sample's %s", sample.GetKind(), diff)
			}
		})
	}
}

// A Monitoring selects the ServiceMonitor of a WebApp with monitoring
// enabled in its namespace: with no selector, every ServiceMonitor there;
// with one, a ServiceMonitor that carries its labels. The Prometheus
// Operator looks in the Prometheus's own namespace when it is given no
// namespace selector.
func TestMonitoringSelectsAWebAppsServiceMonitor(t *testing.T) {
	dir := t.TempDir()
	webapp := filepath.Join(dir, "webapp.yaml")
	writeTestFile(t, webapp, `apiVersion: apps.example.com/v1alpha1
kind: WebApp
metadata: {name: shop, namespace: shop}
spec: {image: "nginx:alpine", domain: shop.example.com, monitoring: {enabled: true}}
`)
	sm := renderedChild(t, webapp, "monitoring.coreos.com/v1", "ServiceMonitor")
	for name, selector := range map[string]string{
		"no selector":          "{}",
		"the WebApp's part-of": `{matchLabels: {"app.kubernetes.io/part-of": shop}}`,
		"another team":         `{matchLabels: {team: frontend}}`,
	} {
		t.Run(name, func(t *testing.T) {
			monitoring := filepath.Join(t.TempDir(), "monitoring.yaml")
			writeTestFile(t, monitoring, fmt.Sprintf(`apiVersion: monitoring.example.com/v1alpha1
kind: Monitoring
metadata: {name: metrics, namespace: shop}
spec: {serviceMonitorSelector: %s}
`, selector))
			prometheus := renderedChild(t, monitoring, "monitoring.coreos.com/v1", "Prometheus")
			if prometheus.GetNamespace() != sm.GetNamespace() {
				t.Fatalf("Prometheus in %q, ServiceMonitor in %q", prometheus.GetNamespace(), sm.GetNamespace())
			}
			if _, found, _ := unstructured.NestedFieldNoCopy(prometheus.Object, "spec", "serviceMonitorNamespaceSelector"); found {
				t.Error("the Prometheus looks for ServiceMonitors in other namespaces")
			}
			raw, _, _ := unstructured.NestedMap(prometheus.Object, "spec", "serviceMonitorSelector")
			var ls metav1.LabelSelector
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
				t.Fatal(err)
			}
			sel, err := metav1.LabelSelectorAsSelector(&ls)
			if err != nil {
				t.Fatal(err)
			}
			want := name != "another team"
			if got := sel.Matches(labels.Set(sm.GetLabels())); got != want {
				t.Errorf("selector %v matches the ServiceMonitor's labels %v: %v, want %v", sel, sm.GetLabels(), got, want)
			}
		})
	}
}

// renderedChild renders the CRs of file with the shipped templates through
// the CLI and returns the one child of that apiVersion and kind.
func renderedChild(t *testing.T, file, apiVersion, kind string) *unstructured.Unstructured {
	t.Helper()
	run := runCLI(t, "render", "-f", file)
	if run.err != nil {
		t.Fatalf("cuerator render -f %s: %v\n%s", file, run.err, run.stderr)
	}
	objs, err := render.ReadManifests(strings.NewReader(run.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetAPIVersion() == apiVersion && o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("cuerator render -f %s: %d %s %s, want 1:\n%s", file, len(found), apiVersion, kind, run.stdout)
	}
	return found[0]
}

func readManifests(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil || len(objs) == 0 {
		t.Fatalf("%s: %d objects, %v", file, len(objs), err)
	}
	return objs
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// missingFrom names the first field of want, by its path, that got lacks
// or holds with another value; "" when got holds all of want. Lists are
// compared item by item and must be as long.
func missingFrom(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s (an object; rendered %v)", path, got)
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if diff := missingFrom(w[k], g[k], path+"."+k); diff != "" {
				return diff
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s (%v; rendered %v)", path, want, got)
		}
		for i := range w {
			if diff := missingFrom(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); diff != "" {
				return diff
			}
		}
		return ""
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s (%v; rendered %v)", path, want, got)
		}
		return ""
	}
}
