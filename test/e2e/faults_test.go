package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
)

// The Gear kind runs a Deployment and a ConfigMap, and on request also
// produces a Secret (which its operator may not write), a cert-manager
// Certificate (whose CRD the cluster does not have), or a ConfigMap whose
// value the template cannot compute (a division by spec.divisor = 0).
const (
	gearModule = "module: \"test.cuerator.dev/faults@v0\"\nlanguage: version: \"v0.17.0\"\n"
	gearAPI    = `package api

#CRD: {group: "faults.test.cuerator.dev", version: "v1", kind: "Gear", plural: "gears", singular: "gear", scope: "Namespaced"}
#Spec: {
	// secret adds a Secret.
	secret: bool | *false
	// tls adds a cert-manager Certificate.
	tls: bool | *false
	// divisor divides 100 in the ConfigMap; 0 breaks the template.
	divisor: int | *1
}
#Status: {...}
`
	gearTemplate = `package gear

import "test.cuerator.dev/faults/gear/api"

childKinds: [
	{apiVersion: "apps/v1", kind: "Deployment"},
	{apiVersion: "v1", kind: "ConfigMap"},
	{apiVersion: "v1", kind: "Secret"},
	{apiVersion: "cert-manager.io/v1", kind: "Certificate"},
]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
_labels: {app: "gear", gear: cr.metadata.name}
objects: {
	deployment: {
		apiVersion: "apps/v1"
		kind:       "Deployment"
		metadata: name: cr.metadata.name
		spec: {
			selector: matchLabels: _labels
			template: {
				metadata: labels: _labels
				spec: containers: [{name: "app", image: "registry.example/gear:1"}]
			}
		}
	}
	config: {
		apiVersion: "v1"
		kind:       "ConfigMap"
		metadata: name: cr.metadata.name
		data: share: "\(div(100, cr.spec.divisor))"
	}
	if cr.spec.secret {
		secret: {
			apiVersion: "v1"
			kind:       "Secret"
			metadata: name: cr.metadata.name
			stringData: token: "t"
		}
	}
	if cr.spec.tls {
		certificate: {
			apiVersion: "cert-manager.io/v1"
			kind:       "Certificate"
			metadata: name: cr.metadata.name
			spec: {secretName: cr.metadata.name + "-tls", dnsNames: ["gear.example.com"]}
		}
	}
}
`
	gearOperator = "gear-operator"
)

// TestFaultsKeepWhatRuns breaks one thing at a time under a running Gear:
// writes its operator is denied, a child kind the cluster does not serve, a
// template that fails on the new spec. Each must show as a condition that
// names the cause, and must leave the running children exactly as they are.
func TestFaultsKeepWhatRuns(t *testing.T) {
	lib := installKind(t, gearModule, "gear", gearAPI, gearTemplate)
	ns := namespace(t, "faults")
	startManager(t, gearOperatorConfig(t, lib, ns), lib, "")

	kubectlIn(t, "apiVersion: faults.test.cuerator.dev/v1\nkind: Gear\nmetadata: {name: g}\nspec: {}\n", "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "gear/g")
	running := map[string]string{
		"deployment/g": jsonpath(t, ns, "deployment/g", "{.metadata.uid}"),
		"configmap/g":  jsonpath(t, ns, "configmap/g", "{.metadata.uid}"),
	}
	inventory := jsonpath(t, ns, "gear/g", "{.status.inventory[*].id}")
	// stillRunning checks that a fault changed nothing that ran before it.
	stillRunning := func(t *testing.T) {
		t.Helper()
		for object, uid := range running {
			if got := jsonpath(t, ns, object, "{.metadata.uid}{.metadata.deletionTimestamp}"); got != uid {
				t.Errorf("%s was deleted or is being deleted: %q, want uid %s", object, got, uid)
			}
		}
		if share := jsonpath(t, ns, "configmap/g", "{.data.share}"); share != "100" {
			t.Errorf("configmap/g share %q, want the last good 100", share)
		}
		if got := jsonpath(t, ns, "gear/g", "{.status.inventory[*].id}"); !containsAll(got, inventory) {
			t.Errorf("inventory %q lost entries of %q: a later prune would miss them", got, inventory)
		}
	}
	// failing patches the spec and waits for condition typ to say want
	// (status/reason) with a message naming every one of words.
	failing := func(t *testing.T, spec, typ, want string, words ...string) {
		t.Helper()
		kubectl(t, "patch", "gear", "g", "-n", ns, "--type=merge", "-p", spec)
		eventually(t, 60*time.Second, typ+" "+want, func() error {
			c := condition(t, ns, "gear/g", typ)
			if !strings.HasPrefix(c, want+":") {
				return fmt.Errorf("%s %q", typ, c)
			}
			for _, w := range words {
				if !strings.Contains(c, w) {
					return fmt.Errorf("%s %q does not name %q", typ, c, w)
				}
			}
			return nil
		})
	}

	t.Run("writes denied for one child kind", func(t *testing.T) {
		failing(t, `{"spec":{"secret":true}}`, "Ready", "False/ApplyFailed", "Secret", "forbidden", gearOperator)
		if exists(t, ns, "secret", "g") {
			t.Error("the Secret exists although its writes are denied")
		}
		stillRunning(t)
	})
	t.Run("a child kind the cluster does not serve", func(t *testing.T) {
		failing(t, `{"spec":{"secret":false,"tls":true}}`, "Ready", "False/ApplyFailed", "Certificate", "cert-manager.io/v1")
		stillRunning(t)
	})
	t.Run("a template that fails on the new spec", func(t *testing.T) {
		failing(t, `{"spec":{"tls":false,"divisor":0}}`, "Stalled", "True/TemplateError", "division by zero")
		if c := condition(t, ns, "gear/g", "Ready"); !strings.HasPrefix(c, "False/") {
			t.Errorf("Ready %q while the template fails", c)
		}
		stillRunning(t)
	})
	t.Run("fixed, it converges with nothing lost", func(t *testing.T) {
		kubectl(t, "patch", "gear", "g", "-n", ns, "--type=merge", "-p", `{"spec":{"divisor":4}}`)
		eventually(t, 60*time.Second, "the ConfigMap at the fixed spec", func() error {
			if share := jsonpath(t, ns, "configmap/g", "{.data.share}"); share != "25" {
				return fmt.Errorf("share %q", share)
			}
			return nil
		})
		eventually(t, 90*time.Second, "Ready", func() error {
			if c := condition(t, ns, "gear/g", "Ready"); !strings.HasPrefix(c, "True/") {
				return fmt.Errorf("Ready %q", c)
			}
			return nil
		})
		for object, uid := range running {
			if got := jsonpath(t, ns, object, "{.metadata.uid}"); got != uid {
				t.Errorf("%s uid %q, want %s", object, got, uid)
			}
		}
		if got := jsonpath(t, ns, "gear/g", "{.status.inventory[*].id}"); got != inventory {
			t.Errorf("inventory %q, want %q", got, inventory)
		}
	})
}

// gearOperatorConfig returns the admin config impersonating a service
// account that holds the ClusterRole `cuerator rbac` generates for lib, with
// Secrets made read-only, as a cluster admin narrowing it would.
func gearOperatorConfig(t *testing.T, lib *render.Library, ns string) *rest.Config {
	t.Helper()
	role := rbac.ManagerClusterRole(lib)
	role.Name = "test-" + gearOperator
	var rules []rbacv1.PolicyRule
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "secrets") {
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}})
			r.Resources = slices.DeleteFunc(slices.Clone(r.Resources), func(res string) bool { return res == "secrets" })
			if len(r.Resources) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	role.Rules = rules
	binding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   role.TypeMeta,
		ObjectMeta: role.ObjectMeta,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: gearOperator, Namespace: ns}},
	}
	binding.Kind = "ClusterRoleBinding"
	api, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{role, binding} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		kubectlIn(t, string(b), "apply", "-f", "-")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = api.Delete(ctx, obj)
		})
	}
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + gearOperator}
	return cfg
}

// containsAll reports whether the space-separated list got holds every
// entry of want.
func containsAll(got, want string) bool {
	for _, w := range strings.Fields(want) {
		if !slices.Contains(strings.Fields(got), w) {
			return false
		}
	}
	return true
}
