// Package rbac generates the operator's least-privilege RBAC from a template
// library: its kinds' CRs and status, the child kinds their templates list,
// pods for templates that observe them, events and the leader election Lease,
// and, for an operator that installs its CRDs (run --templates), those CRDs.
package rbac

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

// Names of the generated RBAC objects; deploy/rbac binds them.
const (
	ManagerRoleName        = "cuerator-manager"
	LeaderElectionRoleName = "cuerator-leader-election"
	// CRDInstallerRoleName is what an operator run with --templates needs
	// besides ManagerRoleName: it installs its kinds' CRDs.
	CRDInstallerRoleName = "cuerator-crd-installer"
)

// The verbs each thing the operator touches needs, and no more. The operator
// issues no update on children or CRs (it writes with server-side apply, a
// patch), and no get on a status subresource (it reads CRs whole).
var (
	// A CR is read through an informer: a watch that streams the initial
	// state (WatchList), or list and watch on API servers without it. get
	// shows no more than list and completes the usual read triple.
	crVerbs = []string{"get", "list", "watch"}
	// Status is written with a server-side apply of the status subresource.
	crStatusVerbs = []string{"patch"}
	// Children carry a controller ownerReference with blockOwnerDeletion.
	// Where the OwnerReferencesPermissionEnforcement admission plugin is on
	// (OpenShift, hardened clusters), setting it requires update on the
	// owner's finalizers subresource.
	crFinalizerVerbs = []string{"update"}
	// Children: read through informers (list, watch) and after each apply
	// (get); server-side apply and the merge patch that releases an orphan
	// (patch); create-only children, and an apply that creates, which the
	// API server also authorizes as create (create); pruning and re-creation
	// on an immutable field (delete).
	childVerbs = []string{"create", "delete", "get", "list", "patch", "watch"}
	// Pods are only read, as metadata, for templates that observe them.
	podVerbs = []string{"get", "list", "watch"}
	// Inputs are read: watched as metadata, then got or listed when a CR
	// reads them.
	inputVerbs = []string{"get", "list", "watch"}
	// The reconcilers' recorder (events.k8s.io) creates events and patches
	// a repeated one into a series.
	eventVerbs = []string{"create", "patch"}
	// client-go's Lease lock gets, creates and renews (update) its Lease.
	leaseVerbs = []string{"create", "get", "update"}
	// With --templates, the operator server-side applies each kind's CRD
	// (patch; the API server authorizes the apply that creates it as
	// create) and reads it until it is Established (get): only the CRDs of
	// its kinds, by name.
	// Reads go to the API server, by name (no informer on CRDs, which
	// would need list and watch of every CRD of the cluster).
	crdVerbs = []string{"create", "get", "patch"}
	// A kind of several versions has its CRs rewritten in the storage
	// version (an empty merge patch of each CR) and its CRD's
	// status.storedVersions trimmed (update of the status subresource, by
	// name), when the operator installs its CRD.
	migrationCRVerbs     = []string{"patch"}
	migrationStatusVerbs = []string{"update"}
	// The conversion webhook of a kind of several versions: the operator
	// keeps its certificate in a Secret of its namespace (get and update by
	// name; create, which RBAC cannot limit to a name) and gives the
	// kinds' CRDs its CA (get and patch, by name).
	webhookSecretVerbs       = []string{"get", "update"}
	webhookSecretCreateVerbs = []string{"create"}
	webhookCRDVerbs          = []string{"get", "patch"}
)

// WebhookCertSecret is the Secret in which the operator of deploy/
// keeps its conversion webhook's certificate (--webhook-cert-secret), and
// ConversionRoleName the Role that lets it.
const (
	WebhookCertSecret  = "cuerator-webhook-cert"
	ConversionRoleName = "cuerator-conversion"
)

// ManagerClusterRole is the ClusterRole the operator needs to serve lib's
// kinds: their CRs and status, every child kind their templates list, what
// the Roles they produce grant, pods for templates that observe them, and
// events. It never grants a wildcard.
//
// Child kinds map to resources offline, by the kind's own plural when the
// child is a kind of lib and otherwise by meta.UnsafeGuessKindToResource
// (lower case, plural by English suffix rules). That is right for every
// built-in Kubernetes kind and for CRDs that follow the convention; a CRD
// with an irregular plural needs a rule of its own.
func ManagerClusterRole(lib *render.Library) *rbacv1.ClusterRole {
	g := grants{}
	observesPods := false
	for _, k := range lib.Kinds() {
		g.add(k.GVK.Group, k.Plural, crVerbs...)
		g.add(k.GVK.Group, k.Plural+"/status", crStatusVerbs...)
		if len(k.ChildKinds) > 0 {
			g.add(k.GVK.Group, k.Plural+"/finalizers", crFinalizerVerbs...)
		}
		for _, child := range k.ChildKinds {
			g.add(child.Group, ResourceOf(lib, child), childVerbs...)
		}
		for _, input := range k.InputKinds {
			g.add(input.Group, ResourceOf(lib, input), inputVerbs...)
		}
		// The API server lets the operator create a Role only with what
		// the operator may do itself.
		for _, r := range k.RoleRules() {
			for _, group := range r.APIGroups {
				for _, resource := range r.Resources {
					g.add(group, resource, r.Verbs...)
				}
			}
		}
		observesPods = observesPods || k.ObservesPods()
	}
	if observesPods {
		g.add("", "pods", podVerbs...)
	}
	g.add("events.k8s.io", "events", eventVerbs...)
	rules := g.rules()
	if names := multiVersionCRDs(lib); len(names) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, ResourceNames: names, Verbs: webhookCRDVerbs})
	}
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: ManagerRoleName},
		Rules:      rules,
	}
}

// multiVersionCRDs names the CRDs of lib's kinds of several versions.
func multiVersionCRDs(lib *render.Library) []string {
	var names []string
	for _, k := range lib.Kinds() {
		if k.MultiVersion() {
			names = append(names, k.Plural+"."+k.GVK.Group)
		}
	}
	sort.Strings(names)
	return names
}

// ConversionRole is the Role the operator needs in its namespace to keep
// its conversion webhook's certificate in the Secret WebhookCertSecret;
// nil when no kind of lib has several versions.
func ConversionRole(lib *render.Library, namespace string) *rbacv1.Role {
	if len(multiVersionCRDs(lib)) == 0 {
		return nil
	}
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: ConversionRoleName, Namespace: namespace},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{WebhookCertSecret}, Verbs: webhookSecretVerbs},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: webhookSecretCreateVerbs},
		},
	}
}

// ConversionRoleBinding binds ConversionRole to the operator's
// ServiceAccount.
func ConversionRoleBinding(namespace, serviceAccount string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: ConversionRoleName, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ConversionRoleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}
}

// LeaderElectionRole is the Role the operator needs in its own namespace to
// elect a leader: the Lease, and the core events that controller-runtime's
// leader election records about it.
func LeaderElectionRole(namespace string) *rbacv1.Role {
	g := grants{}
	g.add("coordination.k8s.io", "leases", leaseVerbs...)
	g.add("", "events", eventVerbs...)
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: LeaderElectionRoleName, Namespace: namespace},
		Rules:      g.rules(),
	}
}

// CRDInstallerClusterRole is the ClusterRole an operator run with
// --templates needs to install the CRDs of lib's kinds, and nothing wider:
// writes and reads by name. A kind added to the templates needs this role
// generated again, as it needs ManagerClusterRole for its children.
//
// For a kind of several versions it also grants the storage migration
// that follows a change of storage version: patch of its CRs and update of
// its CRD's status, by name.
func CRDInstallerClusterRole(lib *render.Library) *rbacv1.ClusterRole {
	names := make([]string, 0, len(lib.Kinds()))
	var migrated []string
	g := grants{}
	for _, k := range lib.Kinds() {
		names = append(names, k.Plural+"."+k.GVK.Group)
		if k.MultiVersion() {
			migrated = append(migrated, k.Plural+"."+k.GVK.Group)
			g.add(k.GVK.Group, k.Plural, migrationCRVerbs...)
		}
	}
	sort.Strings(names)
	sort.Strings(migrated)
	const group, resource = "apiextensions.k8s.io", "customresourcedefinitions"
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{group}, Resources: []string{resource}, ResourceNames: names, Verbs: crdVerbs},
	}
	if len(migrated) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource + "/status"}, ResourceNames: migrated, Verbs: migrationStatusVerbs})
		rules = append(rules, g.rules()...)
	}
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: CRDInstallerRoleName},
		Rules:      rules,
	}
}

// Manifests is the YAML that `cuerator rbac` prints and
// deploy/rbac/role.yaml holds: ManagerClusterRole, then LeaderElectionRole
// in namespace, then, if a kind has several versions, ConversionRole and
// its binding, then, if installsCRDs, CRDInstallerClusterRole.
func Manifests(lib *render.Library, namespace string, installsCRDs bool) ([]byte, error) {
	objs := []any{ManagerClusterRole(lib), LeaderElectionRole(namespace)}
	if role := ConversionRole(lib, namespace); role != nil {
		objs = append(objs, role, ConversionRoleBinding(namespace, "cuerator"))
	}
	if installsCRDs {
		objs = append(objs, CRDInstallerClusterRole(lib))
	}
	return YAML("# Generated from the templates by `cuerator rbac` (make generate): do not edit.\n", objs...)
}

// YAML writes RBAC objects as one YAML stream after header.
func YAML(header string, objs ...any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	for i, obj := range objs {
		// Through JSON to drop the empty creationTimestamp that ObjectMeta
		// marshals.
		raw, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("RBAC manifests: %w", err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(out)
	}
	return buf.Bytes(), nil
}

// irregularPlurals are the resources of other operators' kinds that the
// English suffix rules guess wrong, where a shipped template produces them.
var irregularPlurals = map[schema.GroupKind]string{
	{Group: "elasticsearch.k8s.elastic.co", Kind: "Elasticsearch"}: "elasticsearches",
}

// ResourceOf names the resource that serves gvk, without a cluster, as the
// generated rules name it.
func ResourceOf(lib *render.Library, gvk schema.GroupVersionKind) string {
	if k := lib.Kind(gvk); k != nil {
		return k.Plural
	}
	if plural, ok := irregularPlurals[gvk.GroupKind()]; ok {
		return plural
	}
	plural, _ := meta.UnsafeGuessKindToResource(gvk)
	return plural.Resource
}

// grants collects verbs per API group and resource.
type grants map[string]map[string]sets.Set[string]

func (g grants) add(group, resource string, verbs ...string) {
	if g[group] == nil {
		g[group] = map[string]sets.Set[string]{}
	}
	if g[group][resource] == nil {
		g[group][resource] = sets.New[string]()
	}
	g[group][resource].Insert(verbs...)
}

// rules merges the grants into one rule per API group and set of verbs,
// sorted by group and then resource, so the output is stable.
func (g grants) rules() []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, group := range sets.List(sets.KeySet(g)) {
		byVerbs := map[string]*rbacv1.PolicyRule{}
		for _, resource := range sets.List(sets.KeySet(g[group])) {
			verbs := sets.List(g[group][resource])
			key := strings.Join(verbs, ",")
			if r, ok := byVerbs[key]; ok {
				r.Resources = append(r.Resources, resource)
				continue
			}
			byVerbs[key] = &rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
		}
		start := len(rules)
		for _, r := range byVerbs {
			rules = append(rules, *r)
		}
		// Resources were added in order, so the first names the rule.
		sort.Slice(rules[start:], func(i, j int) bool {
			return rules[start+i].Resources[0] < rules[start+j].Resources[0]
		})
	}
	return rules
}
