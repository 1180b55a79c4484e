package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
)

const chartDir = "../../charts/cuerator"

// The chart of charts/cuerator, with the real helm (v3.22.0, pinned in
// test/tools/helm): it lints, installs with `helm install` under a release
// name of its own, and, rendered with `helm template` and applied
// server-side into the operator's namespace, gives an identity that an
// operator reconciles an example with.
func TestHelmChart(t *testing.T) {
	helm := buildHelm(t)
	helm.run(t, "lint", "--strict", chartDir)

	t.Run("helm install", func(t *testing.T) {
		const release, ns = "cuerator-helm", "cuerator-helm"
		t.Cleanup(func() {
			_, _ = helm.output("uninstall", release, "-n", ns, "--wait", "--ignore-not-found")
			_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", ns, "--ignore-not-found", "--wait=false")
		})
		// The cluster's CRDs were applied by kubectl: Helm would refuse to
		// take them over, and the chart's are the same.
		helm.run(t, "install", release, chartDir, "-n", ns, "--create-namespace", "--wait", "--timeout", "3m",
			"--set", "crds.install=false", "--set", "image.repository=registry.example/cuerator", "--set", "image.tag=v0.0.0-e2e")
		deployment := "deployment/" + release + "-controller-manager"
		if image := kubectl(t, "get", "-n", ns, deployment, "-o", "jsonpath={.spec.template.spec.containers[0].image}"); image != "registry.example/cuerator:v0.0.0-e2e" {
			t.Errorf("%s runs image %q", deployment, image)
		}
		if sa := kubectl(t, "get", "-n", ns, deployment, "-o", "jsonpath={.spec.template.spec.serviceAccountName}"); sa != release {
			t.Errorf("%s runs as service account %q, want %s", deployment, sa, release)
		}
		subject := kubectl(t, "get", "clusterrolebinding", release+"-manager", "-o", "jsonpath={.roleRef.name} {.subjects[0].namespace}/{.subjects[0].name}")
		if want := release + "-manager " + ns + "/" + release; subject != want {
			t.Errorf("ClusterRoleBinding %s-manager binds %q, want %q", release, subject, want)
		}
		helm.run(t, "uninstall", release, "-n", ns, "--wait")
		if out, err := kubectlOut(testCluster.KubeconfigPath, "get", "clusterrole", release+"-manager"); err == nil {
			t.Errorf("helm uninstall left the ClusterRole:\n%s", out)
		}
	})

	t.Run("the operator as the chart's identity", func(t *testing.T) {
		manifests := helm.run(t, "template", "cuerator", chartDir, "-n", operatorNamespace, "--set", "image.repository=registry.example/cuerator")
		objs, err := render.ReadManifests(strings.NewReader(manifests))
		if err != nil {
			t.Fatal(err)
		}
		applyRelease(t, manifests, objs)

		renamed := renaming{suffix: "helm.test.cuerator.dev"}
		lib := renamed.library(t)
		installCRDs(t, lib)
		renamed.grant(t, objs, rbac.ManagerClusterRole(lib), renamedRole)
		ns := namespace(t, "helm-identity")
		audit := newAPIAudit()
		cfg := rest.CopyConfig(testCluster.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorAccount}
		cfg.Wrap(audit.wrap)
		stop := startOperatorAs(t, cfg, lib, freeAddr(t), "")
		crs := renamed.sample(t, lib, ns, sample)
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", crs["Memcached"], "--timeout=90s")
		stop()
		if forbidden := audit.forbiddenRequests(); len(forbidden) > 0 {
			t.Errorf("the API server forbade the operator %d requests; first ones: %v", len(forbidden), forbidden[:min(len(forbidden), 10)])
		}
	})
}

// applyRelease applies a rendered release into the operator's namespace
// (made as deploy/namespace makes it) as kubectl apply --server-side does,
// checks that the API server has no warning, that the Deployment rolls out,
// and removes it all but the CRDs when the test ends.
func applyRelease(t *testing.T, manifests string, objs []*unstructured.Unstructured) {
	t.Helper()
	var removable []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			removable = append(removable, o) // every test shares the CRDs
		}
	}
	if _, warnings := kubectlStreams(t, "", "apply", "--server-side", "-k", "../../deploy/namespace"); warnings != "" {
		t.Errorf("applying the namespace warned:\n%s", warnings)
	}
	t.Cleanup(func() {
		if out, err := kubectlInput(yamlStream(t, removable), "delete", "--ignore-not-found", "--timeout=2m", "-f", "-"); err != nil {
			t.Errorf("removing the release: %v\n%s", err, out)
		}
		if out, err := kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", operatorNamespace, "--ignore-not-found", "--timeout=2m"); err != nil {
			t.Errorf("removing namespace %s: %v\n%s", operatorNamespace, err, out)
		}
	})
	for _, args := range [][]string{{"apply", "--server-side", "--dry-run=server", "-f", "-"}, {"apply", "--server-side", "-f", "-"}} {
		if _, warnings := kubectlStreams(t, manifests, args...); warnings != "" {
			t.Errorf("kubectl %s warned:\n%s", strings.Join(args, " "), warnings)
		}
	}
	kubectl(t, "rollout", "status", "-n", operatorNamespace, "deployment/cuerator-controller-manager", "--timeout=90s")
}

// helmCLI is the real helm, with its configuration and cache in the test's
// own directories, against the test cluster.
type helmCLI struct {
	bin string
	env []string
}

// buildHelm builds helm from the module test/tools/helm, with the version
// stamps of helm's own release build.
func buildHelm(t *testing.T) helmCLI {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "helm")
	const pkg = "helm.sh/helm/v3"
	ldflags := "-s -w -X " + pkg + "/internal/version.version=v3.22.0" +
		" -X " + pkg + "/pkg/lint/rules.k8sVersionMajor=1 -X " + pkg + "/pkg/lint/rules.k8sVersionMinor=37" +
		" -X " + pkg + "/pkg/chartutil.k8sVersionMajor=1 -X " + pkg + "/pkg/chartutil.k8sVersionMinor=37"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, pkg+"/cmd/helm")
	cmd.Dir = "../tools/helm"
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build helm: %v\n%s", err, out)
	}
	home := t.TempDir()
	return helmCLI{bin: bin, env: append(os.Environ(),
		"KUBECONFIG="+testCluster.KubeconfigPath,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)}
}

func (h helmCLI) output(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	out, err := cmd.Output()
	if exit, ok := err.(*exec.ExitError); ok {
		return string(out) + string(exit.Stderr), err
	}
	return string(out), err
}

// run runs helm and fails the test when it fails; it returns the output.
func (h helmCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.output(args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
