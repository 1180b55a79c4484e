package olm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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

const exampleCR = `
apiVersion: cache.example.com/v1alpha1
kind: Memcached
metadata: {name: sample}
spec: {size: 1}
`

func bundleSource(t *testing.T, manifests string) BundleSource {
	t.Helper()
	objs, err := render.ReadManifests(strings.NewReader(manifests))
	if err != nil {
		t.Fatal(err)
	}
	examples, err := render.ReadManifests(strings.NewReader(exampleCR))
	if err != nil {
		t.Fatal(err)
	}
	return BundleSource{Package: "op", Version: "1.2.3", Channel: "alpha", Image: "registry.example/op:1.2.3", Manifests: objs, Examples: examples}
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
	var csv ClusterServiceVersion
	if err := readYAMLStrict(filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), &csv); err != nil {
		t.Fatal(err)
	}
	if csv.Metadata.Name != "op.v1.2.3" {
		t.Errorf("CSV name %q", csv.Metadata.Name)
	}
	strategy := csv.Spec.Install.Spec
	if len(strategy.Deployments) != 1 || strategy.Deployments[0].Name != "op-manager" ||
		strategy.Deployments[0].Spec.Template.Spec.Containers[0].Image != "registry.example/op:1.2.3" {
		t.Errorf("deployments %+v", strategy.Deployments)
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
	want := "webapps.apps.example.com v1alpha1 WebApp, memcacheds.cache.example.com v1alpha1 Memcached, databases.database.example.com v1alpha1 Database"
	if got := strings.Join(owned, ", "); got != want {
		t.Errorf("owned CRDs %s, want %s", got, want)
	}
}

// Each rule of the validation catches what it is about.
func TestValidateBundleFindsProblems(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    string
	}{
		{"owned CRD missing", func(t *testing.T, dir string) {
			removeBundleFile(t, filepath.Join(dir, "manifests", "cache.example.com_memcacheds.yaml"))
		}, "owned CRD memcacheds.cache.example.com is not in manifests/"},
		{"CRD not owned", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), "name: memcacheds.cache.example.com", "name: other.cache.example.com")
		}, "CRD memcacheds.cache.example.com in manifests/ is not among spec.customresourcedefinitions.owned"},
		{"version not semver", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), "version: 1.2.3", "version: \"1.2\"")
		}, `spec.version "1.2" is not a semantic version`},
		{"install mode missing", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), "type: MultiNamespace", "type: AllNamespaces")
		}, "spec.installModes lists MultiNamespace 0 times"},
		{"strategy", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), "strategy: deployment", "strategy: helm")
		}, `strategy "helm", want deployment`},
		{"service account without permissions", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "manifests", "op.clusterserviceversion.yaml"), "              serviceAccountName: op\n", "              serviceAccountName: nobody\n")
		}, `runs as service account "nobody", which no permissions or clusterPermissions entry names`},
		{"default channel", func(t *testing.T, dir string) {
			editBundleFile(t, filepath.Join(dir, "metadata", "annotations.yaml"), "channel.default.v1: alpha", "channel.default.v1: stable")
		}, `default channel "stable" is not among the channels "alpha"`},
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

func removeBundleFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func editBundleFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
