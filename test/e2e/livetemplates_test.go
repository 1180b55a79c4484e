package e2e

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/mount"
)

// deploy/live-templates as it ships: the operator reads its templates from
// a ConfigMap mounted by a projected volume, installs their CRDs itself and
// follows the ConfigMap live. The test lays out the ConfigMap as the
// kubelet would from the shipped volume's items, and runs the operator on
// that directory with the identity and nothing but the RBAC the overlay
// grants (for the kinds renamed into groups of their own, as TestDeploy
// does: see renaming). Then it swaps `..data`, as the kubelet does when the ConfigMap
// changes, to a module with a changed template and a new kind.
func TestLiveTemplatesDeploy(t *testing.T) {
	shipped := deployKustomization(t, "../../deploy/live-templates")
	for _, o := range shipped {
		if o.GetKind() == "CustomResourceDefinition" {
			t.Errorf("deploy/live-templates applies CRD %s: the operator installs its CRDs", o.GetName())
		}
	}
	renamed := renaming{suffix: "live-deploy.test.cuerator.dev"}
	files := renamed.files(t, kubeletView(t, shipped))
	full := t.TempDir()
	if err := mount.Write(full, files); err != nil {
		t.Fatal(err)
	}
	lib, err := render.Load(os.DirFS(full))
	if err != nil {
		t.Fatalf("the shipped ConfigMap, mounted, does not load: %v", err)
	}
	renamed.grant(t, shipped, rbac.ManagerClusterRole(lib), renamedRole)
	renamed.grant(t, shipped, rbac.CRDInstallerClusterRole(lib), renamedRole+"-crds")
	t.Cleanup(func() {
		for _, k := range lib.Kinds() {
			_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "crd", "--ignore-not-found", k.Plural+"."+k.GVK.Group)
		}
	})

	// The operator starts without the Database kind; the swap adds it.
	first := maps.Clone(files)
	maps.DeleteFunc(first, func(path string, _ []byte) bool { return strings.HasPrefix(path, "database/") })
	dir := t.TempDir()
	if err := mount.Write(dir, first); err != nil {
		t.Fatal(err)
	}
	startLib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}

	ns := namespace(t, "live-templates-deploy")
	granted := effectivePermissions(t, ns)
	audit := newAPIAudit()
	audited := false
	t.Cleanup(func() {
		if !audited {
			t.Logf("API requests the API server forbade: %v", audit.forbiddenRequests())
		}
	})
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorAccount}
	cfg.Wrap(audit.wrap)
	metricsAddr := freeAddr(t)
	stop := startOperatorAs(t, cfg, startLib, metricsAddr, dir)

	installOperatorCRDs(t)
	crs := map[string]string{}
	for _, sample := range []string{"memcached-sample.yaml", "webapp-sample.yaml", "monitoring-sample.yaml", "searchcluster-sample.yaml"} {
		maps.Copy(crs, renamed.sample(t, startLib, ns, "../../examples/"+sample))
	}
	otherOperatorsReport(t, ns)
	for _, cr := range crs {
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=90s")
	}
	scrapeSecureMetrics(t, ns, metricsAddr)

	// The ConfigMap changes: the Memcached template annotates its
	// Deployment, and the Database kind comes in.
	const template = "memcached/memcached.cue"
	files[template] = append(slices.Clone(files[template]), []byte("\nobjects: deployment: metadata: annotations: \"live.test.cuerator.dev/swapped\": \"yes\"\n")...)
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the Memcached Deployment rendered from the swapped template", func() error {
		if got := jsonpath(t, ns, "deployment/memcached-sample", `{.metadata.annotations.live\.test\.cuerator\.dev/swapped}`); got != "yes" {
			return fmt.Errorf("annotation %q", got)
		}
		return nil
	})
	database := kindNamed(t, lib, "Database")
	eventually(t, 90*time.Second, "the new kind's CRD installed by the operator", func() error {
		_, err := kubectlOut(testCluster.KubeconfigPath, "wait", "--for=condition=Established", "crd/"+database.Plural+"."+database.GVK.Group, "--timeout=1s")
		return err
	})
	maps.Copy(crs, renamed.sample(t, lib, ns, "../../examples/database-sample.yaml"))
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", crs["Database"], "--timeout=90s")
	// Pruning: without backups, the Database's CronJob goes.
	kubectl(t, "patch", "-n", ns, crs["Database"], "--type=merge", "-p", `{"spec":{"backup":{"enabled":false}}}`)
	eventually(t, 2*time.Minute, "backup CronJob pruned", func() error {
		if out := kubectl(t, "get", "cronjobs", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("still there: %s", out)
		}
		return nil
	})
	stop()

	audited = true
	if forbidden := audit.forbiddenRequests(); len(forbidden) > 0 {
		t.Errorf("the API server forbade the operator %d requests; first ones: %v", len(forbidden), forbidden[:min(len(forbidden), 10)])
	}
	reasons := permissionReasons{lib: lib, used: audit.used(), renamed: renamed}
	for _, p := range sortedPermissions(granted) {
		if reasons.used.Has(p) {
			continue
		}
		if why := reasons.of(p); why != "" {
			t.Logf("held, not used here: %s: %s", p, why)
			continue
		}
		t.Errorf("the operator holds %s but never used it, and no reason is known", p)
	}
}

// kubeletView is the template directory the kubelet mounts from the shipped
// objects: the manager's --templates directory, filled from the ConfigMap
// of its projected volume as the volume's items place each key.
func kubeletView(t *testing.T, shipped []*unstructured.Unstructured) map[string][]byte {
	t.Helper()
	var deployment appsv1.Deployment
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range shipped {
		switch o.GetKind() {
		case "Deployment":
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &deployment); err != nil {
				t.Fatal(err)
			}
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, cm); err != nil {
				t.Fatal(err)
			}
			configMaps[cm.Name] = cm
		}
	}
	pod := deployment.Spec.Template.Spec
	manager := pod.Containers[0]
	var templatesDir string
	for _, arg := range manager.Args {
		if dir, ok := strings.CutPrefix(arg, "--templates="); ok {
			templatesDir = dir
		}
	}
	if templatesDir == "" {
		t.Fatalf("the manager runs without --templates: %v", manager.Args)
	}
	volume := ""
	for _, m := range manager.VolumeMounts {
		if m.MountPath == templatesDir {
			volume = m.Name
			if !m.ReadOnly {
				t.Errorf("the templates are mounted writable")
			}
		}
	}
	files := map[string][]byte{}
	for _, v := range pod.Volumes {
		if v.Name != volume || v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			cm := configMaps[src.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("the volume projects ConfigMap %s, which is not shipped", src.ConfigMap.Name)
			}
			if len(src.ConfigMap.Items) != len(cm.Data)+len(cm.BinaryData) {
				t.Errorf("the volume's items place %d of the ConfigMap's %d keys", len(src.ConfigMap.Items), len(cm.Data)+len(cm.BinaryData))
			}
			for _, item := range src.ConfigMap.Items {
				content, ok := cm.Data[item.Key]
				if !ok {
					t.Fatalf("item %s: no such key in ConfigMap %s", item.Key, cm.Name)
				}
				files[item.Path] = []byte(content)
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("no projected volume of a ConfigMap is mounted at %s", templatesDir)
	}
	return files
}

func kindNamed(t *testing.T, lib *render.Library, kind string) *render.Kind {
	t.Helper()
	for _, k := range lib.Kinds() {
		if k.GVK.Kind == kind {
			return k
		}
	}
	t.Fatalf("no kind %s in the module", kind)
	return nil
}
