package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// The operator as it ships: deploy/default installs cleanly into a namespace
// that enforces the restricted Pod Security Standard, and an operator with
// the identity of the deployed ServiceAccount, holding nothing but the RBAC
// deploy/ grants, reconciles every sample to Ready without one forbidden
// request, while each permission it holds is either used or has a reason.
const (
	operatorNamespace = "cuerator-system"
	operatorAccount   = "system:serviceaccount:" + operatorNamespace + ":cuerator"
	// renamedRole grants the renamed kinds what the shipped ClusterRole
	// grants the built-in ones; the test checks it grants nothing else.
	renamedRole = "cuerator-rbac-e2e"
)

func TestDeploy(t *testing.T) {
	shipped := deployKustomization(t, "../../deploy/default")
	t.Run("PrometheusMonitorRenders", func(t *testing.T) { testPrometheusMonitor(t, shipped) })
	t.Run("DeniesWhatItNeedsNot", testDeniedPermissions)
	t.Run("LeastPrivilege", func(t *testing.T) { testLeastPrivilege(t, shipped) })
	t.Run("OfflineResourceNamesMatchDiscovery", testOfflineResourceNames)
}

// deployKustomization applies a kustomization of deploy/ as `make deploy`
// does, checks that the API server has no warning about it (Pod Security
// would warn about a pod that breaks the namespace's standard) and that the
// Deployment rolls out, and removes it all but the CRDs when the test ends.
// It returns the objects.
func deployKustomization(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	manifests, warnings := kubectlStreams(t, "", "kustomize", dir)
	if warnings != "" {
		t.Errorf("kubectl kustomize %s warned:\n%s", dir, warnings)
	}
	objs, err := render.ReadManifests(strings.NewReader(manifests))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var namespaces, removable []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			continue // every test shares the CRDs: never removed here
		case "Namespace":
			namespaces = append(namespaces, o)
		}
		removable = append(removable, o)
	}
	if len(namespaces) != 1 || namespaces[0].GetName() != operatorNamespace {
		t.Fatalf("%s should create exactly the namespace %s", dir, operatorNamespace)
	}
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if l := namespaces[0].GetLabels()["pod-security.kubernetes.io/"+mode]; l != "restricted" {
			t.Errorf("namespace %s: pod-security.kubernetes.io/%s=%q, want restricted", operatorNamespace, mode, l)
		}
	}
	t.Cleanup(func() {
		// Waits until the namespace is gone, so that a later test can
		// create it again.
		if out, err := kubectlInput(yamlStream(t, removable), "delete", "--ignore-not-found", "--timeout=2m", "-f", "-"); err != nil {
			t.Errorf("removing %s: %v\n%s", dir, err, out)
		}
	})

	// Namespaced objects can be dry-run only once their namespace exists.
	if _, warnings := kubectlStreams(t, yamlStream(t, namespaces), "apply", "--server-side", "-f", "-"); warnings != "" {
		t.Errorf("applying the namespace warned:\n%s", warnings)
	}
	for _, dryRun := range []bool{true, false} {
		args := []string{"apply", "--server-side", "-f", "-"}
		if dryRun {
			args = append(args, "--dry-run=server")
		}
		if _, warnings := kubectlStreams(t, manifests, args...); warnings != "" {
			t.Errorf("kubectl %s warned:\n%s", strings.Join(args, " "), warnings)
		}
	}
	// Pods that broke the restricted standard would be refused, and the
	// rollout would never finish.
	kubectl(t, "rollout", "status", "-n", operatorNamespace, "deployment/cuerator-controller-manager", "--timeout=90s")
	return objs
}

// The optional ServiceMonitor scrapes the Service that deploy/default ships.
func testPrometheusMonitor(t *testing.T, shipped []*unstructured.Unstructured) {
	out, warnings := kubectlStreams(t, "", "kustomize", "../../deploy/prometheus")
	if warnings != "" {
		t.Errorf("kubectl kustomize deploy/prometheus warned:\n%s", warnings)
	}
	objs, err := render.ReadManifests(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "ServiceMonitor" || objs[0].GetNamespace() != operatorNamespace {
		t.Fatalf("deploy/prometheus: want one ServiceMonitor in %s, got %d objects", operatorNamespace, len(objs))
	}
	selector, _, _ := unstructured.NestedStringMap(objs[0].Object, "spec", "selector", "matchLabels")
	endpoints, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "endpoints")
	for _, o := range shipped {
		if o.GetKind() != "Service" {
			continue
		}
		if !labelsMatch(selector, o.GetLabels()) {
			t.Errorf("the ServiceMonitor selects %v; Service %s has labels %v", selector, o.GetName(), o.GetLabels())
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		if len(endpoints) != 1 || len(ports) != 1 || endpoints[0].(map[string]any)["port"] != ports[0].(map[string]any)["name"] {
			t.Errorf("the ServiceMonitor's endpoints %v do not name the Service's port %v", endpoints, ports)
		}
		return
	}
	t.Error("deploy/default has no metrics Service")
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// A few things the operator must not be able to do, as kubectl sees it, next
// to two it must, which show that the question reaches the right identity.
func testDeniedPermissions(t *testing.T) {
	for _, c := range []struct {
		allowed bool
		args    []string
	}{
		{true, []string{"patch", "deployments.apps", "-n", "default"}},
		{true, []string{"update", "leases.coordination.k8s.io", "-n", operatorNamespace}},
		{false, []string{"create", "namespaces"}},
		{false, []string{"delete", "customresourcedefinitions.apiextensions.k8s.io"}},
		{false, []string{"create", "clusterrolebindings.rbac.authorization.k8s.io"}},
		{false, []string{"get", "nodes"}},
		{false, []string{"create", "pods", "-n", "default"}},
		{false, []string{"get", "configmaps", "-n", "kube-system"}},
		// It writes with server-side apply (patch), never update.
		{false, []string{"update", "deployments.apps", "-n", "default"}},
		// Leases only in its own namespace.
		{false, []string{"create", "leases.coordination.k8s.io", "-n", "default"}},
		{false, []string{"impersonate", "serviceaccounts"}},
	} {
		// --quiet answers by exit code only: 0 yes, 1 no.
		out, err := kubectlOut(testCluster.KubeconfigPath, append([]string{"auth", "can-i", "--quiet", "--as=" + operatorAccount}, c.args...)...)
		var exit *exec.ExitError
		if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
			t.Fatalf("kubectl auth can-i %s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
		if allowed := err == nil; allowed != c.allowed {
			t.Errorf("can-i %s: %v, want %v", strings.Join(c.args, " "), allowed, c.allowed)
		}
	}
}

func testLeastPrivilege(t *testing.T, shipped []*unstructured.Unstructured) {
	renamed := renaming{suffix: "rbac.test.cuerator.dev"}
	lib := renamed.library(t)
	installCRDs(t, lib)
	renamed.grant(t, shipped, rbac.ManagerClusterRole(lib), renamedRole)
	ns := namespace(t, "rbac-least-privilege")
	granted := effectivePermissions(t, ns)

	audit := newAPIAudit()
	audited := false
	t.Cleanup(func() {
		// A CR that never got Ready ends the test before the audit: forbidden
		// requests may be why.
		if !audited {
			t.Logf("API requests the API server forbade: %v", audit.forbiddenRequests())
		}
	})
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorAccount}
	cfg.Wrap(audit.wrap)
	metricsAddr := freeAddr(t)
	stop := startOperatorAs(t, cfg, lib, metricsAddr, "")

	installOperatorCRDs(t)
	crs := renamed.samples(t, lib, ns)
	otherOperatorsReport(t, ns)
	for _, cr := range crs {
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=90s")
	}
	scrapeSecureMetrics(t, ns, metricsAddr)
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
	if notes := kubectl(t, "get", "events", "-n", ns, "-o", "jsonpath={.items[*].message}"); strings.Contains(strings.ToLower(notes), "forbidden") {
		t.Errorf("events in %s mention forbidden: %s", ns, notes)
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

// installKind writes a template module of one kind (its cue.mod/module.cue,
// api package and template), loads it and installs its CRD until the test ends.
func installKind(t *testing.T, module, kind, api, template string) *render.Library {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cue.mod", "module.cue"), module)
	writeFile(t, filepath.Join(dir, kind, "api", "api.cue"), api)
	writeFile(t, filepath.Join(dir, kind, kind+".cue"), template)
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, lib)
	return lib
}

// installCRDs installs lib's CRDs and removes them, and every CR, at the end.
func installCRDs(t *testing.T, lib *render.Library) {
	t.Helper()
	crds, err := crdgen.GenerateAll(lib)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := crdgen.MarshalYAML(crds)
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(manifest), "apply", "--server-side", "-f", "-")
	t.Cleanup(func() {
		if out, err := kubectlInput(string(manifest), "delete", "--ignore-not-found", "-f", "-"); err != nil {
			t.Errorf("removing the CRDs: %v\n%s", err, out)
		}
	})
	for _, crd := range crds {
		kubectl(t, "wait", "--for=condition=Established", "crd/"+crd.Name, "--timeout=60s")
	}
}

// permission is one thing RBAC allows: a verb on a resource of an API group
// (with its subresource, e.g. deployments/status), or on a non-resource URL.
type permission struct {
	Group, Resource, Verb string
	// Name is set when a rule allows only the resource of that name.
	Name string
}

func (p permission) String() string {
	s := p.Verb + " " + p.Resource
	if p.Group != "" {
		s += "." + p.Group
	}
	if p.Name != "" {
		s += "/" + p.Name
	}
	return s
}

// permissionsOf expands rules into permissions, with every API group and
// resource name passed through rename if it is not nil.
func permissionsOf(rules []rbacv1.PolicyRule, rename func(string) string) sets.Set[permission] {
	out := sets.New[permission]()
	for _, r := range rules {
		for _, g := range r.APIGroups {
			if rename != nil {
				g = rename(g)
			}
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					names := r.ResourceNames
					if len(names) == 0 {
						names = []string{""}
					}
					for _, n := range names {
						if rename != nil && n != "" {
							n = rename(n)
						}
						out.Insert(permission{Group: g, Resource: res, Verb: v, Name: n})
					}
				}
			}
		}
		for _, url := range r.NonResourceURLs {
			for _, v := range r.Verbs {
				out.Insert(permission{Resource: url, Verb: v})
			}
		}
	}
	return out
}

func sortedPermissions(ps sets.Set[permission]) []permission {
	out := ps.UnsortedList()
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// effectivePermissions is what the API server lets the operator do, in ns and
// in its own namespace, beyond what any ServiceAccount of its namespace may:
// everything deploy/ (and renaming.grant) bound to it.
func effectivePermissions(t *testing.T, ns string) sets.Set[permission] {
	t.Helper()
	// No such ServiceAccount exists: impersonating it gives the groups
	// every ServiceAccount of the namespace has, and nothing bound to it.
	const baseline = "system:serviceaccount:" + operatorNamespace + ":rbac-e2e-nobody"
	held, base := sets.New[permission](), sets.New[permission]()
	for _, where := range []string{ns, operatorNamespace} {
		held = held.Union(rulesReview(t, operatorAccount, where))
		base = base.Union(rulesReview(t, baseline, where))
	}
	return held.Difference(base)
}

// rulesReview asks the API server what user may do in namespace.
func rulesReview(t *testing.T, user, namespace string) sets.Set[permission] {
	t.Helper()
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	review, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: namespace},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rules review of %s in %s: %v", user, namespace, err)
	}
	if review.Status.Incomplete {
		t.Fatalf("rules review of %s in %s is incomplete: %s", user, namespace, review.Status.EvaluationError)
	}
	var rules []rbacv1.PolicyRule
	for _, r := range review.Status.ResourceRules {
		rules = append(rules, rbacv1.PolicyRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames})
	}
	for _, r := range review.Status.NonResourceRules {
		rules = append(rules, rbacv1.PolicyRule{Verbs: r.Verbs, NonResourceURLs: r.NonResourceURLs})
	}
	return permissionsOf(rules, nil)
}

// permissionReasons says why the operator may hold a permission this test
// does not make it use.
type permissionReasons struct {
	lib     *render.Library
	used    sets.Set[permission]
	renamed renaming
}

func (r permissionReasons) of(p permission) string {
	switch {
	case r.grantedByARole(p):
		return "a template's Role grants it, and the API server lets the operator create that Role only if the operator holds what it grants"
	case p.Resource == "customresourcedefinitions" && strings.HasSuffix(p.Name, ".example.com"):
		renamed := p
		renamed.Name = r.renamed.group(p.Name)
		if r.used.Has(renamed) || r.of(renamed) != "" {
			return "the shipped kind's CRD; held as " + renamed.String()
		}
	case p.Resource == "customresourcedefinitions" && p.Verb == "get":
		for used := range r.used {
			if used.Resource == p.Resource && used.Verb == "get" && used.Name != "" {
				return "the operator reads the CRDs it installs by name (as " + used.String() + ")"
			}
		}
	case p.Resource == "customresourcedefinitions" && p.Verb == "create":
		installed := p
		installed.Verb = "patch"
		if r.used.Has(installed) {
			return "the server-side apply that installed the CRD (" + installed.String() + ") is authorized as create too, since the CRD was new"
		}
	case strings.HasSuffix(p.Group, ".example.com"):
		renamed := p
		renamed.Group = r.renamed.group(p.Group)
		if r.used.Has(renamed) {
			return "the shipped kind's rule, used here as " + renamed.String()
		}
		if why := r.of(renamed); why != "" {
			return "the shipped kind's rule; as " + renamed.String() + ": " + why
		}
	case strings.HasSuffix(p.Resource, "/finalizers") && p.Verb == "update":
		return "children's ownerReferences set blockOwnerDeletion, which needs it where the OwnerReferencesPermissionEnforcement admission plugin is on (not in this cluster)"
	case p.Verb == "list":
		watch := p
		watch.Verb = "watch"
		if r.used.Has(watch) || r.of(watch) != "" {
			return "informers stream their initial state with a watch where the API server supports it (WatchList), and list where it does not"
		}
	case p.Resource == "events" && p.Verb == "patch":
		return "an event that repeats is patched into a series"
	case p.Verb == "get" && (p.Resource == "pods" || r.isCR(p)):
		return "read from the informer cache; list already grants as much"
	case r.isChild(p):
		for used := range r.used {
			if used.Verb == p.Verb && r.isChild(used) {
				return "the applier treats every child kind alike, and used it on " + used.String()
			}
		}
	}
	return ""
}

func (r permissionReasons) grantedByARole(p permission) bool {
	for _, k := range r.lib.Kinds() {
		for _, rule := range k.RoleRules() {
			if slices.Contains(rule.APIGroups, p.Group) && slices.Contains(rule.Resources, p.Resource) && slices.Contains(rule.Verbs, p.Verb) {
				return true
			}
		}
	}
	return false
}

func (r permissionReasons) isCR(p permission) bool {
	for _, k := range r.lib.Kinds() {
		if k.GVK.Group == p.Group && k.Plural == p.Resource {
			return true
		}
	}
	return false
}

func (r permissionReasons) isChild(p permission) bool {
	for _, k := range r.lib.Kinds() {
		for _, c := range k.ChildKinds {
			if c.Group == p.Group && rbac.ResourceOf(r.lib, c) == p.Resource {
				return true
			}
		}
	}
	return false
}

// `cuerator rbac` maps child kinds to resources offline; the cluster's
// discovery must agree for every child kind it serves.
func testOfflineResourceNames(t *testing.T) {
	// The other operators' kinds, whose plurals the generator names
	// offline, served by their own CRDs.
	installOperatorCRDs(t)
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	httpClient, err := rest.HTTPClientFor(testCluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(testCluster.Config, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	role := rbac.ManagerClusterRole(lib)
	for _, k := range lib.Kinds() {
		for _, c := range k.ChildKinds {
			m, err := mapper.RESTMapping(c.GroupKind(), c.Version)
			if meta.IsNoMatchError(err) {
				continue // a CRD this cluster does not have (cert-manager's)
			}
			if err != nil {
				t.Fatal(err)
			}
			granted := slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, c.Group) && slices.Contains(r.Resources, m.Resource.Resource)
			})
			if !granted {
				t.Errorf("%s: the generated RBAC does not name the resource the cluster serves, %q", c, m.Resource.Resource)
			}
		}
	}
}

// startOperatorAs runs the operator in this process with cfg's identity, as
// the Deployment runs it: leader election in its namespace, metrics over
// HTTPS with authentication and authorization; templatesDir, unless empty,
// is followed as --templates does.
func startOperatorAs(t *testing.T, cfg *rest.Config, lib *render.Library, metricsAddr, templatesDir string) (stop func()) {
	t.Helper()
	opts := controllers.ManagerOptions{
		Options:            quickReconciles,
		MetricsBindAddress: metricsAddr,
		MetricsSecure:      true,
		LeaderElection:     true,
		LeaderElectionID:   renamedRole,
		LeaderElectionNS:   operatorNamespace,
	}
	opts.TemplatesDir = templatesDir
	op, err := startInProcess(cfg, lib, opts)
	if err != nil {
		t.Fatal(err)
	}
	stop = func() {
		if err := op.stop(); err != nil {
			t.Errorf("operator: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// scrapeSecureMetrics reads the operator's HTTPS /metrics as a caller bound
// to ClusterRole cuerator-metrics-reader, and checks that a caller without
// it, and one without a token, are turned away. The operator checks each
// token with a TokenReview and a SubjectAccessReview, under its own identity.
func scrapeSecureMetrics(t *testing.T, ns, addr string) {
	t.Helper()
	kubectl(t, "create", "serviceaccount", "scraper", "-n", ns)
	kubectl(t, "create", "serviceaccount", "stranger", "-n", ns)
	binding := "rbac-e2e-metrics-reader"
	applyObjects(t, clusterRoleBinding(binding, "cuerator-metrics-reader", ns, "scraper"))
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "--ignore-not-found", "clusterrolebinding", binding)
	})
	scraper := strings.TrimSpace(kubectl(t, "create", "token", "scraper", "-n", ns))
	stranger := strings.TrimSpace(kubectl(t, "create", "token", "stranger", "-n", ns))

	url := "https://" + addr + "/metrics"
	eventually(t, 2*time.Minute, "metrics served to the scraper", func() error {
		status, body, err := getWithToken(url, scraper)
		if err != nil {
			return err
		}
		if status != http.StatusOK || !bytes.Contains(body, []byte("controller_runtime_reconcile_total")) {
			return fmt.Errorf("%d: %.200s", status, body)
		}
		return nil
	})
	for _, c := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"a token without cuerator-metrics-reader", stranger, http.StatusForbidden}} {
		if status, body, err := getWithToken(url, c.token); err != nil || status != c.want {
			t.Errorf("GET /metrics with %s: %d %v %.200s, want %d", c.who, status, err, body, c.want)
		}
	}
}

func getWithToken(url, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The operator serves a self-signed certificate.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// apiAudit records the API requests of an operator as RBAC sees them: the
// permissions they used, and the ones the API server forbade.
type apiAudit struct {
	infos     *request.RequestInfoFactory
	mu        sync.Mutex
	seen      sets.Set[permission]
	forbidden []string
}

func newAPIAudit() *apiAudit {
	return &apiAudit{
		infos: &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")},
		seen:  sets.New[permission](),
	}
}

func (a *apiAudit) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		info, infoErr := a.infos.NewRequestInfo(req)
		if infoErr != nil || !info.IsResourceRequest {
			return resp, err // discovery: every identity may
		}
		p := permission{Group: info.APIGroup, Resource: info.Resource, Verb: info.Verb}
		if info.Subresource != "" {
			p.Resource += "/" + info.Subresource
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.seen.Insert(p)
		if info.Name != "" {
			// A rule with resourceNames allows this request too.
			p.Name = info.Name
			a.seen.Insert(p)
		}
		if resp.StatusCode == http.StatusForbidden {
			a.forbidden = append(a.forbidden, fmt.Sprintf("%s %s", req.Method, req.URL.Path))
		}
		return resp, err
	})
}

func (a *apiAudit) used() sets.Set[permission] {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen.Clone()
}

func (a *apiAudit) forbiddenRequests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.forbidden)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func clusterRoleBinding(name, role, namespace, serviceAccount string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: serviceAccount}},
	}
}

// applyObjects server-side applies typed objects (with their TypeMeta set).
func applyObjects(t *testing.T, objs ...any) {
	t.Helper()
	kubectlIn(t, yamlStream(t, objs), "apply", "--server-side", "-f", "-")
}

// kubectlStreams runs kubectl with stdin and returns its standard output
// and, apart, its standard error, where warnings go; it fails the test when
// kubectl fails.
func kubectlStreams(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// yamlStream writes objects as one multi-document YAML stream.
func yamlStream[T any](t *testing.T, objs []T) string {
	t.Helper()
	docs := make([]string, len(objs))
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = string(b)
	}
	return strings.Join(docs, "---\n")
}
