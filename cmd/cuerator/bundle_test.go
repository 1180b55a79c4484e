package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/generate/olm"
	"github.com/cuerator/cuerator/generate/rbac"
)

// `make bundle` from the committed deploy/ and examples/: the bundle
// validates and grants the manager exactly the rules of its ClusterRole.
func TestBundleFromDeploy(t *testing.T) {
	lib, err := loadLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err = writeBundle(lib, bundleOptions{
		deployDir: "../../deploy", examplesDir: "../../examples", outputDir: out,
		source: olm.BundleSource{Package: "cuerator", Version: "0.1.0", Channel: "alpha", Image: "registry.example/cuerator:0.1.0"},
	})
	if err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(out, "manifests", olm.CSVFileName("cuerator")))
	if err != nil {
		t.Fatal(err)
	}
	var csv operatorsv1alpha1.ClusterServiceVersion
	if err := yaml.UnmarshalStrict(b, &csv); err != nil {
		t.Fatal(err)
	}
	manager := managerClusterRole(t)
	var granted []rbacv1.PolicyRule
	for _, p := range csv.Spec.InstallStrategy.StrategySpec.ClusterPermissions {
		granted = append(granted, p.Rules...)
	}
	for _, rule := range manager.Rules {
		found := false
		for _, g := range granted {
			found = found || equality.Semantic.DeepEqual(rule, g)
		}
		if !found {
			t.Errorf("clusterPermissions lack the rule %+v of ClusterRole %s", rule, manager.Name)
		}
	}
	if img := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs[0].Spec.Template.Spec.Containers[0].Image; img != "registry.example/cuerator:0.1.0" {
		t.Errorf("manager image %q", img)
	}
	if ex := csv.Annotations["alm-examples"]; !strings.Contains(ex, `"name":"memcached-sample"`) {
		t.Errorf("alm-examples lacks the Memcached sample: %s", ex)
	}
}

func TestBundleNeedsDeployManifests(t *testing.T) {
	lib, err := loadLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	err = writeBundle(lib, bundleOptions{
		deployDir: t.TempDir(), examplesDir: "../../examples", outputDir: t.TempDir(),
		source: olm.BundleSource{Package: "cuerator", Version: "0.1.0", Channel: "alpha", Image: "cuerator:dev"},
	})
	if err == nil || !strings.Contains(err.Error(), "rbac/role.yaml") {
		t.Errorf("error %v, want one naming rbac/role.yaml", err)
	}
}

// managerClusterRole reads the ClusterRole of deploy/rbac/role.yaml.
func managerClusterRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	objs, err := readManifestFiles("../../deploy/rbac")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && o.GetName() == rbac.ManagerRoleName {
			var r rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				t.Fatal(err)
			}
			return &r
		}
	}
	t.Fatalf("deploy/rbac has no ClusterRole %s", rbac.ManagerRoleName)
	return nil
}
