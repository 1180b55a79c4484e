package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
)

func childAt(name, version string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace("ns")
	u.SetName(name)
	u.SetResourceVersion(version)
	return u
}

// A child that changed between gate's read and the status (a CronJob whose
// status its controller wrote meanwhile) is settled at the version gate
// judged, so that the news of the change reconciles the CR again: settled
// at the newer one, that news would be taken for nothing new and the CR
// would keep the verdict on the old state.
func TestSettledVersionsKeepWhatGateJudged(t *testing.T) {
	rendered := &render.Rendered{
		Objects: []*unstructured.Unstructured{childAt("a", ""), childAt("b", ""), childAt("c", "")},
		Keys:    []string{"backup", "server", "relay"},
		Graph: map[string]render.Node{
			"backup": {HasReady: true},
			"relay":  {HasReady: true, DependsOn: []string{"server"}},
		},
	}
	lives := []*unstructured.Unstructured{childAt("a", "20"), childAt("b", "11"), childAt("c", "30")}
	g := gated{decidedAt: map[string]string{"backup": "10", "server": "11"}}

	got := map[string]string{}
	for _, s := range settledVersions(rendered, lives, g) {
		got[s.Object.GetName()] = s.Version
	}
	want := map[string]string{
		"a": "10", // changed after gate judged it
		"b": "11", // unchanged since
		"c": "",   // rendered by Observe, judged before it was observed
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("child %s settled at %q, want %q", name, got[name], v)
		}
	}

	// Decisions that read nothing live: the status's own read stands.
	g.decidedAt = nil
	for i, s := range settledVersions(rendered, lives, g) {
		if s.Version != lives[i].GetResourceVersion() {
			t.Errorf("child %s settled at %q, want the version read for the status, %q", s.Object.GetName(), s.Version, lives[i].GetResourceVersion())
		}
	}
}
