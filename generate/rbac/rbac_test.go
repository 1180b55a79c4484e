package rbac_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/versions"
)

// deploy/rbac/role.yaml is what `make deploy` binds the operator to; it must
// be what the templates generate now.
func TestCommittedRBACIsCurrent(t *testing.T) {
	want, err := rbac.Manifests(loadLibrary(t), "cuerator-system", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("deploy/rbac/role.yaml is stale: run make generate")
	}
}

// A module of two kinds: a Tree with an irregular plural, and a Forest that
// produces Trees, ConfigMaps and Pods and observes its pods.
var forestModule = fstest.MapFS{
	"cue.mod/module.cue": {Data: []byte(`module: "example.com/forest@v0"
language: version: "v0.17.0"
`)},
	"tree/api/api.cue": {Data: []byte(`package api
#CRD: {group: "trees.example.com", version: "v1", kind: "Tree", plural: "treez", scope: "Namespaced"}
#Spec: {}
#Status: {...}
`)},
	"tree/tree.cue": {Data: []byte(`package tree
childKinds: []
cr: {...}
objects: {}
`)},
	"forest/api/api.cue": {Data: []byte(`package api
#CRD: {group: "forests.example.com", version: "v1", kind: "Forest", plural: "forests", scope: "Namespaced"}
#Spec: {}
#Status: {...}
`)},
	"forest/forest.cue": {Data: []byte(`package forest
childKinds: [
	{apiVersion: "trees.example.com/v1", kind: "Tree"},
	{apiVersion: "v1", kind: "ConfigMap"},
	{apiVersion: "v1", kind: "Pod"},
	{apiVersion: "v1", kind: "Endpoints"},
	{apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy"},
]
cr: {...}
observe: pods: matchLabels: app: "forest"
objects: {}
`)},
}

func TestManagerClusterRole(t *testing.T) {
	lib, err := render.Load(forestModule)
	if err != nil {
		t.Fatal(err)
	}
	children := []string{"create", "delete", "get", "list", "patch", "watch"}
	want := []rbacv1.PolicyRule{
		// Pods are both a child and observed: the child's verbs cover both.
		{APIGroups: []string{""}, Resources: []string{"configmaps", "endpoints", "pods"}, Verbs: children},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"forests.example.com"}, Resources: []string{"forests"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"forests.example.com"}, Resources: []string{"forests/finalizers"}, Verbs: []string{"update"}},
		{APIGroups: []string{"forests.example.com"}, Resources: []string{"forests/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: children},
		// A Tree is read and produced: its own plural, one rule for the
		// union of verbs. It produces nothing, so no finalizers rule.
		{APIGroups: []string{"trees.example.com"}, Resources: []string{"treez"}, Verbs: children},
		{APIGroups: []string{"trees.example.com"}, Resources: []string{"treez/status"}, Verbs: []string{"patch"}},
	}
	role := rbac.ManagerClusterRole(lib)
	if role.Name != rbac.ManagerRoleName {
		t.Errorf("name %q, want %q", role.Name, rbac.ManagerRoleName)
	}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", role.Rules, want)
	}
}

func TestNoPodsUnlessATemplateObservesThem(t *testing.T) {
	treesOnly := fstest.MapFS{}
	for name, f := range forestModule {
		if !strings.HasPrefix(name, "forest/") {
			treesOnly[name] = f
		}
	}
	lib, err := render.Load(treesOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rbac.ManagerClusterRole(lib).Rules {
		if slices.Contains(r.Resources, "pods") {
			t.Errorf("rule %+v grants pods, which no template observes or produces", r)
		}
	}
}

func TestGeneratedRulesAreNarrow(t *testing.T) {
	lib := loadLibrary(t)
	for _, role := range []struct {
		name  string
		rules []rbacv1.PolicyRule
	}{
		{"ClusterRole", rbac.ManagerClusterRole(lib).Rules},
		{"Role", rbac.LeaderElectionRole("ns").Rules},
	} {
		for _, r := range role.rules {
			if slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") {
				t.Errorf("%s rule %+v has a wildcard", role.name, r)
			}
			if len(r.APIGroups) != 1 || len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("%s rule %+v: want one API group, resources only", role.name, r)
			}
		}
	}
}

// The shipped kinds produce other operators' kinds; each is granted under
// the resource its CRD serves, which for Elasticsearch is not the plural
// the English suffix rules guess. Monitoring's Role grants Prometheus what
// it reads of the namespace, which the operator must hold to create it.
func TestGrantsOfOtherOperatorsKindsAndOfRoles(t *testing.T) {
	role := rbac.ManagerClusterRole(loadLibrary(t))
	for _, want := range []struct{ group, resource, verb string }{
		{"elasticsearch.k8s.elastic.co", "elasticsearches", "patch"},
		{"monitoring.coreos.com", "prometheuses", "patch"},
		{"mysql.oracle.com", "innodbclusters", "patch"},
		{"discovery.k8s.io", "endpointslices", "watch"},
		{"", "endpoints", "list"},
		{"", "pods", "watch"},
	} {
		found := false
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, want.group) && slices.Contains(r.Resources, want.resource) && slices.Contains(r.Verbs, want.verb) {
				found = true
			}
		}
		if !found {
			t.Errorf("no rule grants %s on %s of group %q: %+v", want.verb, want.resource, want.group, role.Rules)
		}
	}
}

// An operator run with --templates installs the CRDs of its kinds, and may
// write no other CRD.
func TestCRDInstallerClusterRole(t *testing.T) {
	lib, err := render.Load(forestModule)
	if err != nil {
		t.Fatal(err)
	}
	role := rbac.CRDInstallerClusterRole(lib)
	crds := []string{"apiextensions.k8s.io"}
	want := []rbacv1.PolicyRule{
		{APIGroups: crds, Resources: []string{"customresourcedefinitions"}, ResourceNames: []string{"forests.forests.example.com", "treez.trees.example.com"}, Verbs: []string{"create", "get", "patch"}},
	}
	if role.Name != rbac.CRDInstallerRoleName || !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ClusterRole %s rules:\n got %+v\nwant %+v", role.Name, role.Rules, want)
	}

	manifests, err := rbac.Manifests(lib, "ns", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifests), "name: "+rbac.CRDInstallerRoleName+"\n") {
		t.Errorf("cuerator rbac --install-crds lacks the ClusterRole %s:\n%s", rbac.CRDInstallerRoleName, manifests)
	}
}

func loadLibrary(t *testing.T) *render.Library {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// A kind of several versions adds what its conversion webhook and storage
// migration use, by name where RBAC can say it; the shipped kinds, of one
// version each, add nothing.
func TestRulesOfAKindOfSeveralVersions(t *testing.T) {
	if rbac.ConversionRole(loadLibrary(t), "ns") != nil {
		t.Error("the shipped kinds get a conversion Role")
	}
	fsys, err := versions.Module()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := render.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	has := func(rules []rbacv1.PolicyRule, group, resource, name, verb string) bool {
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
				(name == "" && len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name))
		})
	}
	const crds, crd = "customresourcedefinitions", "memcacheds.cache.example.com"
	manager := rbac.ManagerClusterRole(lib).Rules
	for _, verb := range []string{"get", "patch"} {
		if !has(manager, "apiextensions.k8s.io", crds, crd, verb) {
			t.Errorf("manager: no %s of CRD %s (its caBundle)", verb, crd)
		}
	}
	if has(manager, "apiextensions.k8s.io", crds, "webapps.apps.example.com", "patch") {
		t.Error("manager: patch of a CRD of one version")
	}
	role := rbac.ConversionRole(lib, "ops").Rules
	if !has(role, "", "secrets", rbac.WebhookCertSecret, "get") || !has(role, "", "secrets", rbac.WebhookCertSecret, "update") || !has(role, "", "secrets", "", "create") || len(role) != 2 {
		t.Errorf("conversion Role %v", role)
	}
	installer := rbac.CRDInstallerClusterRole(lib).Rules
	if !has(installer, "cache.example.com", "memcacheds", "", "patch") || !has(installer, "apiextensions.k8s.io", crds+"/status", crd, "update") {
		t.Errorf("CRD installer: no storage migration of %s: %v", crd, installer)
	}
	out, err := rbac.Manifests(lib, "ops", true)
	if err != nil || !strings.Contains(string(out), "kind: RoleBinding\nmetadata:\n  name: cuerator-conversion\n  namespace: ops\n") {
		t.Errorf("Manifests: %v\n%s", err, out)
	}
}
