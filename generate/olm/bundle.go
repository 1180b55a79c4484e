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
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// An OLM bundle (format registry+v1) of the operator: a
// ClusterServiceVersion that installs the manager Deployment with its RBAC
// and owns the CRDs, the CRDs, and metadata/annotations.yaml.
//
// The types below are the part of operators.coreos.com/v1alpha1 that the
// bundle uses, and ValidateBundle checks the rules of operator-framework's
// bundle validation that apply to it: github.com/operator-framework/api does
// not build against k8s.io v0.37 (v0.9.1, the only release the module proxy
// serves, predates its API changes).

// ClusterServiceVersion describes the operator to OLM.
type ClusterServiceVersion struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   CSVMetadata `json:"metadata"`
	Spec       CSVSpec     `json:"spec"`
}

type CSVMetadata struct {
	Name        string            `json:"name"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type CSVSpec struct {
	DisplayName               string        `json:"displayName"`
	Description               string        `json:"description"`
	Version                   string        `json:"version"`
	Maturity                  string        `json:"maturity,omitempty"`
	Provider                  CSVProvider   `json:"provider"`
	Keywords                  []string      `json:"keywords,omitempty"`
	Links                     []CSVLink     `json:"links,omitempty"`
	InstallModes              []InstallMode `json:"installModes"`
	Install                   CSVInstall    `json:"install"`
	CustomResourceDefinitions CSVCRDs       `json:"customresourcedefinitions"`
}

type CSVProvider struct {
	Name string `json:"name"`
}

type CSVLink struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// InstallMode says whether the operator can watch the namespaces of an
// OperatorGroup of that type.
type InstallMode struct {
	Type      string `json:"type"`
	Supported bool   `json:"supported"`
}

// The four install mode types; a CSV lists each once.
var installModeTypes = []string{"OwnNamespace", "SingleNamespace", "MultiNamespace", "AllNamespaces"}

type CSVInstall struct {
	Strategy string                `json:"strategy"`
	Spec     CSVDeploymentStrategy `json:"spec"`
}

type CSVDeploymentStrategy struct {
	Deployments        []CSVDeployment `json:"deployments"`
	ClusterPermissions []CSVPermission `json:"clusterPermissions,omitempty"`
	Permissions        []CSVPermission `json:"permissions,omitempty"`
}

type CSVDeployment struct {
	Name  string                `json:"name"`
	Label map[string]string     `json:"label,omitempty"`
	Spec  appsv1.DeploymentSpec `json:"spec"`
}

// CSVPermission is what OLM grants a service account: cluster-wide
// (clusterPermissions) or in the install namespace (permissions).
type CSVPermission struct {
	ServiceAccountName string              `json:"serviceAccountName"`
	Rules              []rbacv1.PolicyRule `json:"rules"`
}

type CSVCRDs struct {
	Owned []CSVOwnedCRD `json:"owned"`
}

type CSVOwnedCRD struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Kind        string `json:"kind"`
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
}

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
	// Manifests are the operator's install objects (deploy/rbac and
	// deploy/manager): one Deployment, its ServiceAccount's role bindings
	// and the roles they bind.
	Manifests []*unstructured.Unstructured
	// Examples are sample CRs, shown by OLM consoles (alm-examples).
	Examples []*unstructured.Unstructured
}

// Bundle is an OLM bundle ready to write.
type Bundle struct {
	CSV         *ClusterServiceVersion
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

// Bundle builds the OLM bundle that installs the operator serving l's kinds.
func NewBundle(lib *render.Library, src BundleSource) (*Bundle, error) {
	if _, err := semver.Parse(src.Version); err != nil {
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

	csv := &ClusterServiceVersion{
		APIVersion: "operators.coreos.com/v1alpha1",
		Kind:       "ClusterServiceVersion",
		Metadata: CSVMetadata{
			Name: src.Package + ".v" + src.Version,
			Annotations: map[string]string{
				"alm-examples":   string(examples),
				"capabilities":   "Basic Install",
				"categories":     "Application Runtime",
				"containerImage": deployment.Spec.Template.Spec.Containers[0].Image,
				"description":    "Kubernetes operators from CUE templates",
			},
		},
		Spec: CSVSpec{
			DisplayName: "cuerator",
			Description: "cuerator serves custom resource kinds described in CUE: it renders each CR into its children " +
				"and keeps them applied with server-side apply, pruning what the template stops producing, " +
				"and reports Ready, Reconciling and Stalled with kstatus semantics.",
			Version:  src.Version,
			Maturity: "alpha",
			Provider: CSVProvider{Name: "cuerator"},
			Keywords: []string{"cue", "operator", "gitops", "server-side apply"},
			Links:    []CSVLink{{Name: "Source", URL: "https://github.com/cuerator/cuerator"}},
			// The operator watches every namespace, or one given by a flag
			// that OLM's target namespaces do not set.
			InstallModes: []InstallMode{
				{Type: "OwnNamespace", Supported: false},
				{Type: "SingleNamespace", Supported: false},
				{Type: "MultiNamespace", Supported: false},
				{Type: "AllNamespaces", Supported: true},
			},
			Install: CSVInstall{
				Strategy: "deployment",
				Spec: CSVDeploymentStrategy{
					Deployments:        []CSVDeployment{{Name: deployment.Name, Label: deployment.Labels, Spec: deployment.Spec}},
					ClusterPermissions: permissions(sa, clusterRules),
					Permissions:        permissions(sa, rules),
				},
			},
		},
	}
	for _, k := range lib.Kinds() {
		csv.Spec.CustomResourceDefinitions.Owned = append(csv.Spec.CustomResourceDefinitions.Owned, CSVOwnedCRD{
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

func permissions(sa string, rules []rbacv1.PolicyRule) []CSVPermission {
	if len(rules) == 0 {
		return nil
	}
	return []CSVPermission{{ServiceAccountName: sa, Rules: rules}}
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
	csv, err := yaml.Marshal(b.CSV)
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

// ValidateBundle reads the bundle in dir back and checks it as OLM would:
// the annotations, the CSV's name, version, install modes and deployment
// strategy, and that the CSV owns exactly the CRDs in manifests/. It
// returns every problem found.
func ValidateBundle(dir string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var meta struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := readYAMLStrict(filepath.Join(dir, "metadata", "annotations.yaml"), &meta); err != nil {
		return err
	}
	a := meta.Annotations
	fixed := map[string]string{bundleMediaType: "registry+v1", bundleManifests: "manifests/", bundleMetadata: "metadata/"}
	for _, key := range sortedKeys(fixed) {
		if want := fixed[key]; a[key] != want {
			fail("annotations.yaml: %s is %q, want %q", key, a[key], want)
		}
	}
	pkg := a[bundlePackage]
	if pkg == "" {
		fail("annotations.yaml: %s is not set", bundlePackage)
	}
	if channels := strings.Split(a[bundleChannels], ","); a[bundleChannels] == "" || !slices.Contains(channels, a[bundleDefaultChannel]) {
		fail("annotations.yaml: default channel %q is not among the channels %q", a[bundleDefaultChannel], a[bundleChannels])
	}

	manifests := filepath.Join(dir, "manifests")
	var csv ClusterServiceVersion
	if err := readYAMLStrict(filepath.Join(manifests, CSVFileName(pkg)), &csv); err != nil {
		return errors.Join(append(errs, err)...)
	}
	crds, err := readCRDs(manifests, CSVFileName(pkg))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, validateCSV(&csv, pkg, crds)...)
	return errors.Join(errs...)
}

func validateCSV(csv *ClusterServiceVersion, pkg string, crds map[string]*apiextensionsv1.CustomResourceDefinition) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ClusterServiceVersion: "+format, args...))
	}

	if csv.APIVersion != "operators.coreos.com/v1alpha1" || csv.Kind != "ClusterServiceVersion" {
		fail("apiVersion/kind %s/%s", csv.APIVersion, csv.Kind)
	}
	if _, err := semver.Parse(csv.Spec.Version); err != nil {
		fail("spec.version %q is not a semantic version: %v", csv.Spec.Version, err)
	}
	if want := pkg + ".v" + csv.Spec.Version; csv.Metadata.Name != want {
		fail("metadata.name %q, want %q (<package>.v<version>)", csv.Metadata.Name, want)
	}
	if msgs := validation.IsDNS1123Subdomain(csv.Metadata.Name); len(msgs) > 0 {
		fail("metadata.name %q: %s", csv.Metadata.Name, strings.Join(msgs, "; "))
	}
	required := map[string]string{"displayName": csv.Spec.DisplayName, "description": csv.Spec.Description, "provider.name": csv.Spec.Provider.Name}
	for _, field := range sortedKeys(required) {
		if required[field] == "" {
			fail("spec.%s is empty", field)
		}
	}

	modes := map[string]int{}
	supported := false
	for _, m := range csv.Spec.InstallModes {
		modes[m.Type]++
		supported = supported || m.Supported
		if !slices.Contains(installModeTypes, m.Type) {
			fail("spec.installModes: unknown type %q", m.Type)
		}
	}
	for _, t := range installModeTypes {
		if modes[t] != 1 {
			fail("spec.installModes lists %s %d times, want once", t, modes[t])
		}
	}
	if !supported {
		fail("spec.installModes supports none")
	}

	errs = append(errs, validateStrategy(csv.Spec.Install)...)

	owned := map[string]bool{}
	for _, o := range csv.Spec.CustomResourceDefinitions.Owned {
		owned[o.Name] = true
		if o.DisplayName == "" || o.Description == "" {
			fail("owned CRD %s: displayName and description must be set", o.Name)
		}
		crd, ok := crds[o.Name]
		if !ok {
			fail("owned CRD %s is not in manifests/", o.Name)
			continue
		}
		if crd.Spec.Names.Kind != o.Kind || !slices.ContainsFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Name == o.Version && v.Served }) {
			fail("owned CRD %s: %s %s is not a served version and kind of the CRD", o.Name, o.Version, o.Kind)
		}
	}
	for _, name := range sortedKeys(crds) {
		if !owned[name] {
			fail("CRD %s in manifests/ is not among spec.customresourcedefinitions.owned", name)
		}
	}

	var examples []unstructured.Unstructured
	if err := json.Unmarshal([]byte(csv.Metadata.Annotations["alm-examples"]), &examples); err != nil {
		fail("metadata.annotations.alm-examples is not a JSON list of objects: %v", err)
	}
	for _, ex := range examples {
		gvk := ex.GroupVersionKind()
		if !slices.ContainsFunc(csv.Spec.CustomResourceDefinitions.Owned, func(o CSVOwnedCRD) bool {
			return o.Kind == gvk.Kind && o.Version == gvk.Version && strings.HasSuffix(o.Name, "."+gvk.Group)
		}) {
			fail("alm-examples: %s %s is not of an owned CRD", gvk, ex.GetName())
		}
	}
	return errs
}

func validateStrategy(install CSVInstall) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ClusterServiceVersion: spec.install: "+format, args...))
	}
	if install.Strategy != "deployment" {
		fail("strategy %q, want deployment", install.Strategy)
	}
	if len(install.Spec.Deployments) == 0 {
		fail("no deployment")
	}
	granted := map[string]bool{}
	for _, p := range append(slices.Clone(install.Spec.ClusterPermissions), install.Spec.Permissions...) {
		granted[p.ServiceAccountName] = true
		for _, r := range p.Rules {
			if len(r.Verbs) == 0 || (len(r.Resources) == 0 && len(r.NonResourceURLs) == 0) {
				fail("service account %s: a rule without verbs or resources: %+v", p.ServiceAccountName, r)
			}
		}
	}
	names := map[string]bool{}
	for _, d := range install.Spec.Deployments {
		if msgs := validation.IsDNS1123Subdomain(d.Name); len(msgs) > 0 {
			fail("deployment name %q: %s", d.Name, strings.Join(msgs, "; "))
		}
		if names[d.Name] {
			fail("deployment %s is listed twice", d.Name)
		}
		names[d.Name] = true
		if d.Spec.Selector == nil || !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
			fail("deployment %s: spec.selector does not select its pod template", d.Name)
		}
		if len(d.Spec.Template.Spec.Containers) == 0 {
			fail("deployment %s has no container", d.Name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image == "" {
				fail("deployment %s: container %s has no image", d.Name, c.Name)
			}
		}
		if sa := d.Spec.Template.Spec.ServiceAccountName; !granted[sa] {
			fail("deployment %s runs as service account %q, which no permissions or clusterPermissions entry names (OLM creates only those)", d.Name, sa)
		}
	}
	return errs
}

// readCRDs reads every CRD file of manifests/ but the CSV, by name.
func readCRDs(dir, csvFile string) (map[string]*apiextensionsv1.CustomResourceDefinition, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, e := range entries {
		if e.IsDir() || e.Name() == csvFile {
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := readYAMLStrict(filepath.Join(dir, e.Name()), &crd); err != nil {
			return nil, err
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("manifests/%s: a %s; this bundle holds only the CSV and CRDs", e.Name(), crd.Kind)
		}
		crds[crd.Name] = &crd
	}
	return crds, nil
}

func readYAMLStrict(path string, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// sortedKeys makes the order of error messages stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
