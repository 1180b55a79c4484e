package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
)

// The conversion webhook as deploy/ runs it, for CRDs that someone else
// applies (deploy/crds, through Flux): the CRD points at the webhook's
// Service, the operator keeps its certificate in a Secret and sets the CA
// as the CRD's caBundle, and `cuerator migrate` finishes the storage
// change. The operator runs in this process with the identity and nothing
// but the RBAC generated for the templates. The local cluster routes no
// Service traffic, so the webhook's Service here is an ExternalName one
// that sends the API server to localhost, at the port the CRD names; the
// API server still calls it as a Service, checking the certificate against
// the Service's DNS name.
func TestDeployedConversion(t *testing.T) {
	// The shipped component puts the manager behind the Service the CRDs
	// name, with the flags that make it keep the Secret RBAC grants.
	shipped := deployKustomization(t, "testdata/conversion-deploy")
	svcRef := strings.Split(crdgen.DeployedWebhookService, "/")
	var args []string
	var service *unstructured.Unstructured
	for _, o := range shipped {
		switch {
		case o.GetKind() == "Service" && o.GetName() == svcRef[1] && o.GetNamespace() == svcRef[0]:
			service = o
		case o.GetKind() == "Deployment":
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ = unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		}
	}
	if service == nil {
		t.Fatalf("deploy/conversion has no Service %s", crdgen.DeployedWebhookService)
	}
	if ports, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports"); len(ports) != 1 || ports[0].(map[string]any)["port"] != int64(443) || ports[0].(map[string]any)["targetPort"] != "webhook" {
		t.Errorf("Service %s ports %v, want 443 to the manager's webhook port", crdgen.DeployedWebhookService, ports)
	}
	for _, want := range []string{"--conversion-webhook-service=$(POD_NAMESPACE)/" + svcRef[1], "--webhook-cert-secret=$(POD_NAMESPACE)/" + rbac.WebhookCertSecret} {
		if !slices.Contains(args, want) {
			t.Errorf("the manager's args %v lack %s", args, want)
		}
	}

	bin := buildCuerator(t)
	renamed := renaming{suffix: "deployed-versions.test.cuerator.dev"}
	group := renamed.group("cache.example.com")
	crd := "memcacheds." + group
	resource := func(version string) string { return "memcacheds." + version + "." + group }
	t.Cleanup(func() { deleteCRD(t, crd) })
	oldDir, newDir := versionModules(t, renamed)
	ns := namespace(t, "deployed-conversion")
	opNS := namespace(t, "deployed-conversion-operator")

	// The old templates' CRD, as deploy/crds held it, and CRs written
	// under it, stored in v1alpha1.
	applyGeneratedCRDs(t, bin, oldDir)
	manifest := fmt.Sprintf("apiVersion: %s/v1alpha1\nkind: Memcached\nmetadata: {name: first, namespace: %s}\nspec: {size: 2}\n---\napiVersion: %s/v1alpha1\nkind: Memcached\nmetadata: {name: second, namespace: %s}\nspec: {size: 1}\n", group, ns, group, ns)
	kubectlIn(t, manifest, "apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-")

	// The webhook's Service, and the new templates' CRD pointing at it,
	// applied as Flux applies deploy/crds: with no caBundle.
	port := freePort(t)
	const serviceName = "cuerator-webhook-service"
	kubectlIn(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec: {type: ExternalName, externalName: localhost}\n", serviceName, opNS), "apply", "-f", "-")
	serviceRef := fmt.Sprintf("%s/%s:%d", opNS, serviceName, port)
	newCRDs := applyGeneratedCRDs(t, bin, newDir, "--conversion-webhook-service", serviceRef)

	// The operator, as deployed, with the generated RBAC.
	lib, err := render.Load(os.DirFS(newDir))
	if err != nil {
		t.Fatal(err)
	}
	account := "conversion-operator"
	role := rbac.ManagerClusterRole(lib)
	role.Name = "deployed-conversion-manager"
	applyObjects(t, &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: opNS}},
		role, clusterRoleBinding(role.Name, role.Name, opNS, account), rbac.ConversionRole(lib, opNS), rbac.ConversionRoleBinding(opNS, account))
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "--ignore-not-found", "clusterrolebinding/"+role.Name, "clusterrole/"+role.Name)
	})
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + opNS + ":" + account}
	opts := controllers.ManagerOptions{Options: quickReconciles}
	opts.WatchNamespace = ns
	opts.Conversion = controllers.ConversionOptions{
		BindAddress: net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		Service:     serviceRef,
		CertSecret:  opNS + "/" + rbac.WebhookCertSecret,
	}
	op, err := startInProcess(cfg, lib, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := op.stop(); err != nil {
			t.Errorf("operator: %v", err)
		}
	})

	// The CRD sends conversions to the Service, and trusts the CA the
	// operator keeps in the Secret.
	if got := kubectl(t, "get", "crd", crd, "-o", "jsonpath={.spec.conversion.webhook.clientConfig.service.name} {.spec.conversion.webhook.clientConfig.service.port} {.spec.conversion.webhook.clientConfig.url}"); got != fmt.Sprintf("%s %d ", serviceName, port) {
		t.Errorf("the CRD's webhook is %q, want the Service %s on port %d and no URL", got, serviceName, port)
	}
	caBundle := func() string {
		return kubectl(t, "get", "crd", crd, "-o", "jsonpath={.spec.conversion.webhook.clientConfig.caBundle}")
	}
	ca := kubectl(t, "get", "secret", rbac.WebhookCertSecret, "-n", opNS, "-o", `jsonpath={.data.ca\.crt}`)
	if ca == "" || caBundle() != ca {
		t.Fatalf("the CRD's caBundle %q is not the Secret's ca.crt %q", caBundle(), ca)
	}
	if pem, err := base64.StdEncoding.DecodeString(ca); err != nil || !strings.HasPrefix(string(pem), "-----BEGIN CERTIFICATE-----") {
		t.Errorf("ca.crt is not a PEM certificate: %v", err)
	}

	// Through the Service, both versions read back and the operator
	// reconciles the CRs in v1beta1.
	for _, cr := range []string{"first", "second"} {
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", resource("v1beta1")+"/"+cr, "--timeout=90s")
	}
	if got := kubectl(t, "get", resource("v1beta1")+"/first", "-n", ns, "-o", "jsonpath={.spec.replicas}"); got != "2" {
		t.Errorf("v1beta1 first: spec.replicas %q, want 2", got)
	}
	if got := deploymentOf(t, ns, "first").Replicas; got != 2 {
		t.Errorf("Deployment first: %d replicas, want 2", got)
	}

	// Flux applies deploy/crds again: the caBundle, not Flux's, stays.
	kubectlIn(t, newCRDs, "apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-")
	if caBundle() != ca {
		t.Errorf("re-applying the CRD dropped the caBundle")
	}
	if got := stdout(kubectlStreams(t, "", "get", resource("v1alpha1")+"/second", "-n", ns, "-o", "jsonpath={.spec.size}")); got != "1" {
		t.Errorf("v1alpha1 second: spec.size %q, want 1", got)
	}

	// cuerator migrate finishes the storage change.
	run := runCuerator(t, bin, nil, "--templates", newDir, "migrate")
	if want := crd + ": 2 CRs rewritten in v1beta1; status.storedVersions [v1alpha1 v1beta1] trimmed to [v1beta1]"; run.code != 0 || !strings.Contains(run.stdout, want) {
		t.Errorf("cuerator migrate: exit %d, want 0 and %q\n%s%s", run.code, want, run.stdout, run.stderr)
	}
	if got := kubectl(t, "get", "crd", crd, "-o", "jsonpath={.status.storedVersions}"); got != `["v1beta1"]` {
		t.Errorf("storedVersions %s after cuerator migrate", got)
	}
	for _, cr := range []string{"first", "second"} {
		if got := storedAPIVersion(t, group, ns, cr); got != group+"/v1beta1" && testCluster.EtcdURL != "" {
			t.Errorf("%s is stored as %s after cuerator migrate", cr, got)
		}
	}
	eventually(t, 30*time.Second, "nothing left to migrate", func() error {
		if run := runCuerator(t, bin, nil, "--templates", newDir, "migrate"); !strings.Contains(run.stdout, crd+": every CR is stored in v1beta1") {
			return fmt.Errorf("%s%s", run.stdout, run.stderr)
		}
		return nil
	})
}

// applyGeneratedCRDs applies the CRDs `cuerator crds` generates from templates,
// as `kubectl apply -k deploy/crds` would, waits until they are served,
// and returns them.
func applyGeneratedCRDs(t *testing.T, bin, templates string, args ...string) string {
	t.Helper()
	run := runCuerator(t, bin, nil, append([]string{"crds", "--templates", templates}, args...)...)
	if run.code != 0 {
		t.Fatalf("cuerator crds: exit %d\n%s", run.code, run.stderr)
	}
	kubectlIn(t, run.stdout, "apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-")
	kubectlIn(t, run.stdout, "wait", "--for=condition=Established", "-f", "-", "--timeout=60s")
	return run.stdout
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(port, &n)
	return n
}
