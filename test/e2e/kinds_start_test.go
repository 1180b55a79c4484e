package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// twoKindsModule is a template module with kinds Alpha and Beta, each with
// one ConfigMap child.
func twoKindsModule(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cue.mod", "module.cue"), "module: \"test.cuerator.dev/pair@v0\"\nlanguage: version: \"v0.17.0\"\n")
	for _, kind := range []string{"Alpha", "Beta"} {
		api, template := liveKind(kind, "hello")
		api = strings.ReplaceAll(api, "live.test.cuerator.dev", "pair.test.cuerator.dev")
		template = strings.ReplaceAll(template, "test.cuerator.dev/live/", "test.cuerator.dev/pair/")
		lower := strings.ToLower(kind)
		writeFile(t, filepath.Join(dir, lower, "api", "api.cue"), api)
		writeFile(t, filepath.Join(dir, lower, lower+".cue"), template)
	}
	return dir
}

// kindWaiting reads cuerator_kind_waiting{kind} from this process's metrics.
func kindWaiting(t *testing.T, kind string) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "cuerator_kind_waiting" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// A kind whose CRD is not installed when the operator starts neither stops
// it nor the other kinds: it is reported and tried again, and serves as
// soon as its CRD is there.
func TestOneBrokenKindDoesNotStopTheOthers(t *testing.T) {
	lib, err := render.Load(os.DirFS(twoKindsModule(t)))
	if err != nil {
		t.Fatal(err)
	}
	alpha := lib.Kinds()[0]
	// Only Alpha's CRD, as a `kubectl apply` of part of deploy/crds would.
	crd, err := crdgen.Generate(alpha)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := crdgen.MarshalYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(manifest), "apply", "--server-side", "-f", "-")
	t.Cleanup(func() { _, _ = kubectlInput(string(manifest), "delete", "--ignore-not-found", "-f", "-") })
	kubectl(t, "wait", "--for=condition=Established", "crd/"+crd.Name, "--timeout=60s")

	op, err := startInProcess(testCluster.Config, lib, controllers.ManagerOptions{Options: quickReconciles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.stop() })
	ns := namespace(t, "kinds-one-broken")
	kubectlIn(t, fmt.Sprintf("apiVersion: pair.test.cuerator.dev/v1\nkind: Alpha\nmetadata: {name: a, namespace: %s}\nspec: {}\n", ns), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "alpha/a", "--timeout=90s")
	if w := kindWaiting(t, "beta.pair.test.cuerator.dev"); w != 1 {
		t.Errorf("cuerator_kind_waiting for Beta is %v, want 1 while its CRD is missing", w)
	}
	select {
	case err := <-op.done:
		t.Fatalf("the operator stopped: %v", err)
	default:
	}

	installCRDs(t, lib) // now Beta's too
	kubectlIn(t, fmt.Sprintf("apiVersion: pair.test.cuerator.dev/v1\nkind: Beta\nmetadata: {name: b, namespace: %s}\nspec: {}\n", ns), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "beta/b", "--timeout=90s")
	eventually(t, 30*time.Second, "Beta no longer waiting", func() error {
		if w := kindWaiting(t, "beta.pair.test.cuerator.dev"); w != 0 {
			return fmt.Errorf("cuerator_kind_waiting %v", w)
		}
		return nil
	})
}
