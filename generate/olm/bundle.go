// Package olm writes and validates the Operator Lifecycle Manager bundle of
// the operator for a template library.
package olm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// An OLM bundle (format registry+v1) of the operator: a
// ClusterServiceVersion that installs the manager Deployment with its RBAC
// and owns the CRDs, the CRDs, and metadata/annotations.yaml. It is written
// with operator-framework/api's types and checked by its validators, the
// ones `operator-sdk bundle validate` runs by default.

// BundleSource is what a bundle is made of besides the templates.
type BundleSource struct {
	// Package is the OLM package name and the CSV name's prefix.
	Package string
	// Version is the operator's semantic version, without a leading v.
	Version string
	// Channel is the bundle's only and default channel.
	Channel string
	// Image replaces the manager container's image.
	Image string
	// MinKubeVersion is the oldest Kubernetes release the operator runs on.
	MinKubeVersion string
	// Manifests are the operator's install objects (deploy/rbac and
	// deploy/manager): one Deployment, its ServiceAccount's role bindings
	// and the roles they bind.
	Manifests []*unstructured.Unstructured
	// Examples are sample CRs, shown by OLM consoles (alm-examples).
	Examples []*unstructured.Unstructured
}

// Bundle is an OLM bundle ready to write.
type Bundle struct {
	CSV         *operatorsv1alpha1.ClusterServiceVersion
	CRDs        []*apiextensionsv1.CustomResourceDefinition
	Annotations map[string]string
}

// Annotations of metadata/annotations.yaml.
const (
	bundleMediaType      = "operators.operatorframework.io.bundle.mediatype.v1"
	bundleManifests      = "operators.operatorframework.io.bundle.manifests.v1"
	bundleMetadata       = "operators.operatorframework.io.bundle.metadata.v1"
	bundlePackage        = "operators.operatorframework.io.bundle.package.v1"
	bundleChannels       = "operators.operatorframework.io.bundle.channels.v1"
	bundleDefaultChannel = "operators.operatorframework.io.bundle.channel.default.v1"
)

// NewBundle builds the OLM bundle that installs the operator serving lib's
// kinds.
func NewBundle(lib *render.Library, src BundleSource) (*Bundle, error) {
	v, err := semver.Parse(src.Version)
	if err != nil {
		return nil, fmt.Errorf("bundle version %q is not a semantic version: %w", src.Version, err)
	}
	deployment, err := managerDeployment(src.Manifests)
	if err != nil {
		return nil, err
	}
	if len(deployment.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("Deployment %s has no container", deployment.Name)
	}
	if src.Image != "" {
		for i := range deployment.Spec.Template.Spec.Containers {
			deployment.Spec.Template.Spec.Containers[i].Image = src.Image
		}
	}
	sa := deployment.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		return nil, fmt.Errorf("Deployment %s names no serviceAccountName: OLM grants permissions to a named service account", deployment.Name)
	}
	clusterRules, rules, err := boundRules(src.Manifests, sa)
	if err != nil {
		return nil, err
	}
	defs, err := crdgen.GenerateAll(lib)
	if err != nil {
		return nil, err
	}
	examples, err := json.Marshal(objectsOf(src.Examples))
	if err != nil {
		return nil, fmt.Errorf("alm-examples: %w", err)
	}

	csv := &operatorsv1alpha1.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: operatorsv1alpha1.SchemeGroupVersion.String(), Kind: operatorsv1alpha1.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name: src.Package + ".v" + src.Version,
			Annotations: map[string]string{
				"alm-examples":   string(examples),
				"capabilities":   "Basic Install",
				"categories":     "Application Runtime",
				"containerImage": deployment.Spec.Template.Spec.Containers[0].Image,
				"description":    "Kubernetes operators from CUE templates",
			},
		},
		Spec: operatorsv1alpha1.ClusterServiceVersionSpec{
			DisplayName: "cuerator",
			Description: "cuerator serves custom resource kinds described in CUE: it renders each CR into its children " +
				"and keeps them applied with server-side apply, pruning what the template stops producing, " +
				"and reports Ready, Reconciling and Stalled with kstatus semantics.",
			Version:        version.OperatorVersion{Version: v},
			Maturity:       "alpha",
			MinKubeVersion: src.MinKubeVersion,
			Provider:       operatorsv1alpha1.AppLink{Name: "cuerator"},
			Keywords:       []string{"cue", "operator", "gitops", "server-side apply"},
			Links:          []operatorsv1alpha1.AppLink{{Name: "Source", URL: "https://github.com/cuerator/cuerator"}},
			// The operator watches every namespace, or one given by a flag
			// that OLM's target namespaces do not set.
			InstallModes: []operatorsv1alpha1.InstallMode{
				{Type: operatorsv1alpha1.InstallModeTypeOwnNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeSingleNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeMultiNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeAllNamespaces, Supported: true},
			},
			InstallStrategy: operatorsv1alpha1.NamedInstallStrategy{
				StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
				StrategySpec: operatorsv1alpha1.StrategyDetailsDeployment{
					DeploymentSpecs:    []operatorsv1alpha1.StrategyDeploymentSpec{{Name: deployment.Name, Label: deployment.Labels, Spec: deployment.Spec}},
					ClusterPermissions: permissions(sa, clusterRules),
					Permissions:        permissions(sa, rules),
				},
			},
		},
	}
	for _, k := range lib.Kinds() {
		csv.Spec.CustomResourceDefinitions.Owned = append(csv.Spec.CustomResourceDefinitions.Owned, operatorsv1alpha1.CRDDescription{
			Name:        k.Plural + "." + k.GVK.Group,
			Version:     k.GVK.Version,
			Kind:        k.GVK.Kind,
			DisplayName: k.GVK.Kind,
			Description: fmt.Sprintf("A %s, rendered by cuerator from its CUE template into its children (%s).", k.GVK.Kind, childKindNames(k)),
		})
	}
	return &Bundle{
		CSV:  csv,
		CRDs: defs,
		Annotations: map[string]string{
			bundleMediaType:      "registry+v1",
			bundleManifests:      "manifests/",
			bundleMetadata:       "metadata/",
			bundlePackage:        src.Package,
			bundleChannels:       src.Channel,
			bundleDefaultChannel: src.Channel,
		},
	}, nil
}

func managerDeployment(objs []*unstructured.Unstructured) (*appsv1.Deployment, error) {
	var found []*appsv1.Deployment
	for _, o := range objs {
		if o.GroupVersionKind() != appsv1.SchemeGroupVersion.WithKind("Deployment") {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, d, true); err != nil {
			return nil, fmt.Errorf("Deployment %s: %w", o.GetName(), err)
		}
		found = append(found, d)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("the operator's manifests hold %d Deployments, want one: the manager", len(found))
	}
	return found[0], nil
}

// boundRules collects the rules of the roles that bindings grant the
// service account sa: ClusterRoleBindings cluster-wide, RoleBindings in the
// operator's namespace.
func boundRules(objs []*unstructured.Unstructured, sa string) (cluster, namespaced []rbacv1.PolicyRule, err error) {
	roles := map[string][]rbacv1.PolicyRule{} // by "Kind/name"
	var bindings []*unstructured.Unstructured
	for _, o := range objs {
		if o.GroupVersionKind().Group != rbacv1.GroupName {
			continue
		}
		switch o.GetKind() {
		case "ClusterRole", "Role":
			var r rbacv1.ClusterRole // a Role has the same fields
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
			}
			roles[o.GetKind()+"/"+o.GetName()] = r.Rules
		case "ClusterRoleBinding", "RoleBinding":
			bindings = append(bindings, o)
		}
	}
	for _, o := range bindings {
		var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa }) {
			continue
		}
		ref := b.RoleRef.Kind + "/" + b.RoleRef.Name
		rules, ok := roles[ref]
		if !ok {
			return nil, nil, fmt.Errorf("%s %s binds %s, which is not among the operator's manifests", o.GetKind(), o.GetName(), ref)
		}
		if o.GetKind() == "ClusterRoleBinding" {
			cluster = append(cluster, rules...)
		} else {
			namespaced = append(namespaced, rules...)
		}
	}
	if len(cluster) == 0 {
		return nil, nil, fmt.Errorf("no ClusterRoleBinding grants service account %s a ClusterRole: the manager could not read its CRs", sa)
	}
	return cluster, namespaced, nil
}

func permissions(sa string, rules []rbacv1.PolicyRule) []operatorsv1alpha1.StrategyDeploymentPermissions {
	if len(rules) == 0 {
		return nil
	}
	return []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa, Rules: rules}}
}

func objectsOf(objs []*unstructured.Unstructured) []map[string]any {
	out := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.Object)
	}
	return out
}

func childKindNames(k *render.Kind) string {
	names := make([]string, len(k.ChildKinds))
	for i, c := range k.ChildKinds {
		names[i] = c.Kind
	}
	return strings.Join(names, ", ")
}

// CSVFileName is the name of the ClusterServiceVersion in manifests/.
func CSVFileName(pkg string) string { return pkg + ".clusterserviceversion.yaml" }

// Write writes the bundle into dir: manifests/ (the CSV and one file per
// CRD) and metadata/annotations.yaml, replacing what was there.
func (b *Bundle) Write(dir string) error {
	manifests, metadata := filepath.Join(dir, "manifests"), filepath.Join(dir, "metadata")
	for _, d := range []string{manifests, metadata} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	csv, err := csvYAML(b.CSV)
	if err != nil {
		return fmt.Errorf("ClusterServiceVersion: %w", err)
	}
	files := map[string][]byte{filepath.Join(manifests, CSVFileName(b.Annotations[bundlePackage])): csv}
	for _, crd := range b.CRDs {
		y, err := crdgen.MarshalYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
		if err != nil {
			return err
		}
		files[filepath.Join(manifests, fmt.Sprintf("%s_%s.yaml", crd.Spec.Group, crd.Spec.Names.Plural))] = y
	}
	annotations, err := yaml.Marshal(map[string]any{"annotations": b.Annotations})
	if err != nil {
		return err
	}
	files[filepath.Join(metadata, "annotations.yaml")] = annotations
	for name, content := range files {
		if err := os.WriteFile(name, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// csvYAML is the CSV without the empty creationTimestamp and status that
// its typed form marshals.
func csvYAML(csv *operatorsv1alpha1.ClusterServiceVersion) ([]byte, error) {
	raw, err := json.Marshal(csv)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// ValidateBundle reads the bundle in dir back as OLM does and runs
// operator-framework's default bundle validators on it (the CSV, the CRDs,
// and the bundle as a whole: owned CRDs against manifests/, service
// accounts, size). It returns every error, and the warnings too, which
// OLM would accept but this bundle must not need.
func ValidateBundle(dir string) error {
	bundle, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		return fmt.Errorf("read the bundle in %s: %w", dir, err)
	}
	var problems []error
	for _, result := range validation.DefaultBundleValidators.Validate(bundle.ObjectsToValidate()...) {
		for _, e := range append(result.Errors, result.Warnings...) {
			problems = append(problems, fmt.Errorf("%s: %w", result.Name, e))
		}
	}
	return errors.Join(problems...)
}
