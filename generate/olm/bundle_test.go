package olm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// operatorManifests is an operator install like deploy/rbac and
// deploy/manager: a manager Deployment, its service account's bindings, and
// a ClusterRole bound to someone else (which the bundle must leave out).
const operatorManifests = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: manager}
rules:
- {apiGroups: [cache.example.com], resources: [memcacheds], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: metrics-reader}
rules:
- {nonResourceURLs: [/metrics], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: manager}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: manager}
subjects: [{kind: ServiceAccount, name: op, namespace: op-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader-election, namespace: op-system}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create, get, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader-election, namespace: op-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}
subjects: [{kind: ServiceAccount, name: op, namespace: op-system}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: op-manager, namespace: op-system}
spec:
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      serviceAccountName: op
      containers: [{name: manager, image: op, args: [run]}]
`

// exampleCRs has one CR of each built-in kind: OLM warns about a kind
// without an example.
const exampleCRs = `
apiVersion: cache.example.com/v1alpha1
kind: Memcached
metadata: {name: sample}
spec: {size: 1}
---
apiVersion: apps.example.com/v1alpha1
kind: WebApp
metadata: {name: sample}
spec: {image: "nginx:alpine", domain: example.com}
---
apiVersion: database.example.com/v1alpha1
kind: Database
metadata: {name: sample}
spec: {type: postgresql, version: "13", storage: {size: 10Gi}}
---
apiVersion: monitoring.example.com/v1alpha1
kind: Monitoring
metadata: {name: sample}
spec: {}
---
apiVersion: search.example.com/v1alpha1
kind: SearchCluster
metadata: {name: sample}
spec: {version: 8.8.0, nodeSets: [{name: default}]}
`

func bundleSource(t *testing.T, manifests string) BundleSource {
	t.Helper()
	objs, err := render.ReadManifests(strings.NewReader(manifests))
	if err != nil {
		t.Fatal(err)
	}
	examples, err := render.ReadManifests(strings.NewReader(exampleCRs))
	if err != nil {
		t.Fatal(err)
	}
	return BundleSource{Package: "op", Version: "1.2.3", Channel: "alpha", Image: "registry.example/op:1.2.3", MinKubeVersion: "1.37.0", Manifests: objs, Examples: examples}
}

func writtenBundle(t *testing.T) string {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBundle(lib, bundleSource(t, operatorManifests))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBundle(t *testing.T) {
	dir := writtenBundle(t)
	if err := ValidateBundle(dir); err != nil {
		t.Fatalf("the bundle is invalid: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var csv operatorsv1alpha1.ClusterServiceVersion
	if err := yaml.UnmarshalStrict(b, &csv); err != nil {
		t.Fatal(err)
	}
	if csv.Name != "op.v1.2.3" {
		t.Errorf("CSV name %q", csv.Name)
	}
	strategy := csv.Spec.InstallStrategy.StrategySpec
	if len(strategy.DeploymentSpecs) != 1 || strategy.DeploymentSpecs[0].Name != "op-manager" ||
		strategy.DeploymentSpecs[0].Spec.Template.Spec.Containers[0].Image != "registry.example/op:1.2.3" {
		t.Errorf("deployments %+v", strategy.DeploymentSpecs)
	}
	if cp := strategy.ClusterPermissions; len(cp) != 1 || cp[0].ServiceAccountName != "op" || len(cp[0].Rules) != 1 || cp[0].Rules[0].Resources[0] != "memcacheds" {
		t.Errorf("clusterPermissions %+v: want the manager ClusterRole only", cp)
	}
	if p := strategy.Permissions; len(p) != 1 || p[0].Rules[0].Resources[0] != "leases" {
		t.Errorf("permissions %+v: want the leader election Role", p)
	}
	var owned []string
	for _, o := range csv.Spec.CustomResourceDefinitions.Owned {
		owned = append(owned, o.Name+" "+o.Version+" "+o.Kind)
	}
	want := "webapps.apps.example.com v1alpha1 WebApp, memcacheds.cache.example.com v1alpha1 Memcached, databases.database.example.com v1alpha1 Database, monitorings.monitoring.example.com v1alpha1 Monitoring, searchclusters.search.example.com v1alpha1 SearchCluster"
	if got := strings.Join(owned, ", "); got != want {
		t.Errorf("owned CRDs %s, want %s", got, want)
	}
}

// operator-framework's validators, as ValidateBundle runs them, catch a
// broken bundle and say what is wrong.
func TestValidateBundleFindsProblems(t *testing.T) {
	csvFile := func(dir string) string { return filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml") }
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    string
	}{
		{"owned CRD missing", func(t *testing.T, dir string) {
			removeBundleFile(t, filepath.Join(dir, "manifests", "cache.example.com_memcacheds.yaml"))
		}, `owned CRD "cache.example.com/v1alpha1, Kind=Memcached" not found in bundle`},
		{"CRD not owned", func(t *testing.T, dir string) {
			editCSV(t, csvFile(dir), func(csv *operatorsv1alpha1.ClusterServiceVersion) {
				owned := &csv.Spec.CustomResourceDefinitions.Owned
				*owned = slices.DeleteFunc(*owned, func(d operatorsv1alpha1.CRDDescription) bool { return d.Kind == "Memcached" })
			})
		}, `CRD "cache.example.com/v1alpha1, Kind=Memcached" is present in bundle "op.v1.2.3" but not defined in CSV`},
		{"no install mode supported", func(t *testing.T, dir string) {
			editCSV(t, csvFile(dir), func(csv *operatorsv1alpha1.ClusterServiceVersion) {
				for i := range csv.Spec.InstallModes {
					csv.Spec.InstallModes[i].Supported = false
				}
			})
		}, "none of InstallModeTypes are supported"},
		{"example of a kind the bundle does not own", func(t *testing.T, dir string) {
			editCSV(t, csvFile(dir), func(csv *operatorsv1alpha1.ClusterServiceVersion) {
				csv.Annotations["alm-examples"] = `[{"apiVersion": "other.example.com/v1", "kind": "Other", "metadata": {"name": "x"}}]`
			})
		}, "example must have a provided API"},
		{"minimum Kubernetes version", func(t *testing.T, dir string) {
			editCSV(t, csvFile(dir), func(csv *operatorsv1alpha1.ClusterServiceVersion) { csv.Spec.MinKubeVersion = "latest" })
		}, "csv.Spec.MinKubeVersion has an invalid value: latest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writtenBundle(t)
			tc.breakIt(t, dir)
			err := ValidateBundle(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validation error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBundleRefusesIncompleteManifests(t *testing.T) {
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	noDeployment := operatorManifests[:strings.Index(operatorManifests, "---\napiVersion: apps/v1")]
	unbound := strings.Replace(operatorManifests, "kind: ClusterRoleBinding\nmetadata: {name: manager}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: manager}\nsubjects: [{kind: ServiceAccount, name: op,", "kind: ClusterRoleBinding\nmetadata: {name: manager}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: manager}\nsubjects: [{kind: ServiceAccount, name: someone-else,", 1)
	dangling := strings.Replace(operatorManifests, "kind: ClusterRole, name: manager}", "kind: ClusterRole, name: missing}", 1)
	for name, tc := range map[string]struct{ manifests, want string }{
		"no Deployment":         {noDeployment, "hold 0 Deployments, want one"},
		"no ClusterRoleBinding": {unbound, "no ClusterRoleBinding grants service account op a ClusterRole"},
		"binding to nothing":    {dangling, "binds ClusterRole/missing, which is not among the operator's manifests"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewBundle(lib, bundleSource(t, tc.manifests))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// editCSV rewrites the bundle's CSV after edit.
func editCSV(t *testing.T, path string, edit func(*operatorsv1alpha1.ClusterServiceVersion)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var csv operatorsv1alpha1.ClusterServiceVersion
	if err := yaml.UnmarshalStrict(b, &csv); err != nil {
		t.Fatal(err)
	}
	edit(&csv)
	out, err := csvYAML(&csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeBundleFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
