package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// crdgen's test Widget has every constraint shape that becomes a CEL rule.
// Installed under names of its own (it would clash with the e2e Widget), its
// CRD must be accepted by the real API server, every rule within the cost
// budget, and kubectl apply must refuse what CUE refuses, naming the field.
func TestCELRulesOnTheAPIServer(t *testing.T) {
	lib, err := render.Load(os.DirFS("../../crdgen/testdata/crd/widgets"))
	if err != nil {
		t.Fatal(err)
	}
	crd, err := crdgen.Generate(lib.Kinds()[0])
	if err != nil {
		t.Fatal(err)
	}
	crd.Spec.Group = "rules.cuerator.dev"
	crd.Spec.Names.Kind, crd.Spec.Names.ListKind = "RuleWidget", "RuleWidgetList"
	crd.Spec.Names.Plural, crd.Spec.Names.Singular = "rulewidgets", "rulewidget"
	crd.Spec.Names.ShortNames, crd.Spec.Names.Categories = nil, nil
	crd.Name = "rulewidgets.rules.cuerator.dev"
	manifest, err := crdgen.MarshalYAML([]*apiextensionsv1.CustomResourceDefinition{crd})
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(manifest), "apply", "--server-side", "-f", "-")
	t.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "crd", crd.Name, "--wait=false") })
	kubectl(t, "wait", "--for=condition=Established", "crd/"+crd.Name, "--timeout=60s")

	widget := func(name, spec string) string {
		return fmt.Sprintf("apiVersion: rules.cuerator.dev/v1beta1\nkind: RuleWidget\nmetadata:\n  name: %s\nspec:\n  name: w1\n  owner: me\n  target: 80\n%s", name, spec)
	}
	for _, tc := range []struct {
		name, spec string
		// want is in kubectl's refusal; "" when the CR is valid.
		want string
	}{
		{"every rule kept", "  scale: {min: 1, max: 3}\n  prefix: w-1\n  window: 12\n  hosts: [{name: a.example.com, alias: b.example.com}]\n  tiers: [{weight: 1}, {weight: 2}]\n  quotas: {cpu: {soft: 1, hard: 2}}\n", ""},
		{"max below min", "  scale: {min: 3, max: 2}\n", "spec.scale.max: invalid value (out of bound >=spec.scale.min)"},
		{"hard below soft", "  quotas: {cpu: {soft: 5, hard: 3}}\n", "spec.quotas[*].hard: invalid value (out of bound >=spec.quotas[*].soft)"},
		{"prefix", "  prefix: x-1\n", `spec.prefix: invalid value (does not satisfy strings.HasPrefix("w-"))`},
		{"window", "  window: 7\n", "spec.window: invalid value (does not satisfy int & >=1 & <=5 | int & >=10)"},
		{"host suffix", "  hosts: [{name: a.example.org}]\n", `spec.hosts[].name: invalid value (does not satisfy strings.HasSuffix(".example.com"))`},
		{"alias equal to name", "  hosts: [{name: a.example.com, alias: a.example.com}]\n", "spec.hosts[].alias"},
		{"repeated tier", "  tiers: [{weight: 1}, {weight: 1}]\n", "spec.tiers: invalid value (does not satisfy list.UniqueItems())"},
		{"a tier above the cap", "  maxWeight: 5\n  tiers: [{weight: 6}]\n", "spec.tiers[].weight: invalid value (out of bound <=spec.maxWeight)"},
		{"backup on with a schedule", "  backup: {enabled: true, schedule: daily}\n", ""},
		{"backup on without a schedule", "  backup: {enabled: true}\n", "spec.backup.schedule: field is required but not present (when spec.backup.enabled is true)"},
		{"a schedule without backup", "  backup: {schedule: daily}\n", "spec.backup.schedule: field not allowed (unless spec.backup.enabled is true)"},
		{"power off needs no watts", "  power: {switchedOn: false}\n", ""},
		// The bound the CRD adds for the rule's cost, and warns of.
		{"prefix longer than the default bound", "  prefix: w-" + strings.Repeat("x", 4096) + "\n", "spec.prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := kubectlInput(widget("w", tc.spec), "apply", "--dry-run=server", "-f", "-")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %s", out)
			case tc.want != "" && err == nil:
				t.Errorf("admitted, want a refusal with %q", tc.want)
			case tc.want != "" && !strings.Contains(out, tc.want):
				t.Errorf("refused without %q:\n%s", tc.want, out)
			}
		})
	}

	t.Run("immutable", func(t *testing.T) {
		kubectlIn(t, widget("fixed", "  serial: s1\n"), "apply", "-f", "-")
		t.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "rulewidget", "fixed", "--wait=false") })
		for _, tc := range []struct{ name, spec, want string }{
			{"changed", "  serial: s2\n", "spec.serial: is immutable"},
			{"removed", "", "spec.serial: is immutable"},
			{"defaulted zone changed", "  serial: s1\n  zone: b\n", "spec.zone: is immutable"},
		} {
			out := kubectlFails(t, widget("fixed", tc.spec), "apply", "-f", "-")
			if !strings.Contains(out, tc.want) {
				t.Errorf("%s: refused without %q:\n%s", tc.name, tc.want, out)
			}
		}
		// Other fields still change.
		kubectlIn(t, widget("fixed", "  serial: s1\n  prefix: w-2\n"), "apply", "-f", "-")
	})
}
