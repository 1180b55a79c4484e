package controllers

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
)

// conditionsOf returns type -> "Status/Reason: message" of a built status.
func conditionsOf(t *testing.T, st *status) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range st.conditions {
		out[c.Type] = string(c.Status) + "/" + c.Reason + ": " + c.Message
	}
	return out
}

func crWithStatus(generation int64, st map[string]any) *unstructured.Unstructured {
	cr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.cuerator.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": "ns", "generation": generation},
	}}
	if st != nil {
		cr.Object["status"] = st
	}
	return cr
}

var (
	current  = apply.Health{Object: "ConfigMap/ns/a", Status: kstatus.CurrentStatus}
	current2 = apply.Health{Object: "Deployment/ns/w", Status: kstatus.CurrentStatus}
	progress = apply.Health{Object: "Deployment/ns/w", Status: kstatus.InProgressStatus, Message: "Available: 0/1"}
)

// Each outcome of a reconcile, as the conditions kstatus, Flux, Argo CD and
// `kubectl wait` read.
func TestStatusOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(*status)
		want map[string]string
	}{
		{"healthy", func(s *status) { s.health(nil, []apply.Health{current, current2}) }, map[string]string{
			ConditionReady: "True/Succeeded: 2 children applied and healthy",
		}},
		{"progressing names the first unhealthy child", func(s *status) { s.health(nil, []apply.Health{current, progress}) }, map[string]string{
			ConditionReady:       "False/Progressing: Deployment/ns/w is InProgress: Available: 0/1",
			ConditionReconciling: "True/Progressing: Deployment/ns/w is InProgress: Available: 0/1",
		}},
		{"a wait is named before an unhealthy child", func(s *status) {
			s.health([]apply.Health{{Object: "StatefulSet/ns/db", Status: kstatus.InProgressStatus, Message: "waits until Secret/ns/db-credentials is ready (it is NotFound: not found)"}}, []apply.Health{progress})
		}, map[string]string{
			ConditionReady:       "False/Waiting: StatefulSet/ns/db waits until Secret/ns/db-credentials is ready (it is NotFound: not found)",
			ConditionReconciling: "True/Waiting: StatefulSet/ns/db waits until Secret/ns/db-credentials is ready (it is NotFound: not found)",
		}},
		{"a failed child stalls the CR", func(s *status) {
			s.health(nil, []apply.Health{current, {Object: "Deployment/ns/w", Status: kstatus.FailedStatus, Message: "Progress deadline exceeded"}})
		}, map[string]string{
			ConditionReady:   "False/ChildFailed: Deployment/ns/w is Failed: Progress deadline exceeded",
			ConditionStalled: "True/ChildFailed: Deployment/ns/w is Failed: Progress deadline exceeded",
		}},
		{"stalled", func(s *status) { s.stalled(ReasonInvalidSpec, "spec.size: invalid") }, map[string]string{
			ConditionReady:   "False/InvalidSpec: spec.size: invalid",
			ConditionStalled: "True/InvalidSpec: spec.size: invalid",
		}},
		{"failing", func(s *status) { s.failing(ReasonHealthCheckFailed, "read Deployment/ns/w: boom") }, map[string]string{
			ConditionReady:       "False/HealthCheckFailed: read Deployment/ns/w: boom",
			ConditionReconciling: "True/HealthCheckFailed: read Deployment/ns/w: boom",
		}},
		{"stalled then healthy clears Stalled", func(s *status) {
			s.stalled(ReasonTemplateError, "x")
			s.health(nil, []apply.Health{current})
		}, map[string]string{ConditionReady: "True/Succeeded: 1 child applied and healthy"}},
		{"failing then stalled clears Reconciling", func(s *status) {
			s.failing(ReasonApplyFailed, "x")
			s.stalled(ReasonAdoptionRefused, "y")
		}, map[string]string{ConditionReady: "False/AdoptionRefused: y", ConditionStalled: "True/AdoptionRefused: y"}},
		{"drift left in place", func(s *status) {
			s.drift([]apply.Drift{{Object: "Deployment/ns/w", Fields: []string{".spec.replicas"}, Managers: []string{"kubectl"}}})
		}, map[string]string{ConditionDrifted: "True/DriftReported: Deployment/ns/w: .spec.replicas changed by field manager kubectl"}},
		{"drift corrected sets nothing", func(s *status) {
			s.drift([]apply.Drift{{Object: "Deployment/ns/w", Fields: []string{".spec.replicas"}, Corrected: true}})
		}, map[string]string{}},
		{"templates failed to load", func(s *status) { s.templates(errors.New("x.cue:3: bad")) }, map[string]string{
			ConditionTemplatesLoaded: "False/TemplateLoadFailed: the last good template stays in use: x.cue:3: bad",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStatus(crWithStatus(2, nil))
			tc.do(st)
			if got := conditionsOf(t, st); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("conditions\n got %v\nwant %v", got, tc.want)
			}
			for _, c := range st.conditions {
				if c.ObservedGeneration != 2 {
					t.Errorf("%s: observedGeneration %d, want the CR's 2", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

// What a reconcile does not recompute is carried over: the status apply
// would otherwise remove it.
func TestStatusCarriesOverWhatItDoesNotRecompute(t *testing.T) {
	old := map[string]any{
		"observedGeneration": int64(1),
		"conditions": []any{map[string]any{
			"type": ConditionDrifted, "status": "True", "reason": ReasonDriftReported, "message": "m",
			"lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": int64(1),
		}},
		"inventory": []any{map[string]any{"id": "ns_w_apps_Deployment", "v": "v1"}},
		"children":  []any{map[string]any{"object": "Deployment/ns/w", "status": "Current"}},
		"nodes":     []any{"a", "b"},
	}
	st := newStatus(crWithStatus(1, old))
	if want := (child.Inventory{{ID: "ns_w_apps_Deployment", Version: "v1"}}); !reflect.DeepEqual(st.inventory, want) {
		t.Errorf("inventory %v, want %v", st.inventory, want)
	}
	if c := meta.FindStatusCondition(st.conditions, ConditionDrifted); c == nil || c.Message != "m" {
		t.Errorf("Drifted not carried over: %v", st.conditions)
	}
	built, err := st.build()
	if err != nil {
		t.Fatal(err)
	}
	// An unchanged status compares equal to the stored one: it costs no write.
	if !equality.Semantic.DeepEqual(built, old) {
		t.Errorf("rebuilt status differs from the stored one:\n got %v\nwant %v", built, old)
	}
}

// A template's projection cannot overwrite what cuerator itself writes.
func TestStatusProjectionCannotSetReservedFields(t *testing.T) {
	st := newStatus(crWithStatus(3, nil))
	st.inventory = child.Inventory{{ID: "ns_w__ConfigMap", Version: "v1"}}
	st.projected = map[string]any{"url": "http://x", "observedGeneration": int64(99), "inventory": "mine", "conditions": "mine", "children": "mine"}
	st.set(ConditionReady, metav1.ConditionTrue, ReasonSucceeded, "ok")
	built, err := st.build()
	if err != nil {
		t.Fatal(err)
	}
	if built["url"] != "http://x" || built["observedGeneration"] != int64(3) {
		t.Errorf("built %v", built)
	}
	if inv, _ := built["inventory"].([]any); len(inv) != 1 {
		t.Errorf("inventory %v", built["inventory"])
	}
	if _, ok := built["children"]; ok {
		t.Errorf("children %v set by the projection", built["children"])
	}
}

func TestProgressOnly(t *testing.T) {
	st := func(ready, reason, message string, extra map[string]any) map[string]any {
		out := map[string]any{
			"observedGeneration": int64(1),
			"inventory":          []any{map[string]any{"id": "ns_w_apps_Deployment", "v": "v1"}},
			"conditions": []any{map[string]any{"type": ConditionReady, "status": ready, "reason": reason, "message": message,
				"lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": int64(1)}},
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		old, new map[string]any
		want     bool
	}{
		{"first status", nil, st("False", ReasonProgressing, "a", nil), false},
		{"progress message", st("False", ReasonProgressing, "Available: 0/1", nil), st("False", ReasonProgressing, "Replicas: 1/1", nil), true},
		{"projected field while progressing", st("False", ReasonProgressing, "a", nil), st("False", ReasonProgressing, "a", map[string]any{"nodes": []any{"p"}}), true},
		{"becomes Ready", st("False", ReasonProgressing, "a", nil), st("True", ReasonSucceeded, "ok", nil), false},
		{"starts failing", st("False", ReasonProgressing, "a", nil), st("False", ReasonApplyFailed, "denied", nil), false},
		{"new generation", st("False", ReasonProgressing, "a", nil), st("False", ReasonProgressing, "a", map[string]any{"observedGeneration": int64(2)}), false},
		{"new child", st("False", ReasonProgressing, "a", nil), st("False", ReasonProgressing, "a", map[string]any{"inventory": []any{}}), false},
		{"a Ready CR's message", st("True", ReasonSucceeded, "1 children", nil), st("True", ReasonSucceeded, "2 children", nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := progressOnly(tc.old, tc.new); got != tc.want {
				t.Errorf("progressOnly = %v, want %v", got, tc.want)
			}
		})
	}
}

// A message too long for its place is cut at a character, and says so.
func TestCut(t *testing.T) {
	short := "Deployment/ns/w is InProgress"
	if got := cut(short, maxEventNote); got != short {
		t.Errorf("a short message was changed: %q", got)
	}
	long := strings.Repeat("ü", 2000) // 4,000 bytes, 2 per character
	for _, limit := range []int{maxEventNote, maxConditionMessage / 2} {
		got := cut(long, limit)
		if len(got) > limit {
			t.Errorf("limit %d: %d bytes", limit, len(got))
		}
		if !utf8.ValidString(got) {
			t.Errorf("limit %d: a character was split", limit)
		}
		if !strings.Contains(got, "[cut: ") || !strings.Contains(got, "of 4000 bytes shown]") {
			t.Errorf("limit %d: the cut is not said: %q", limit, got[len(got)-60:])
		}
	}
}

// The status is built in the form the API server returns it: the same as
// encoding it to JSON and decoding that as the API machinery does, so that
// an unchanged status compares equal to the stored one and costs no write.
func TestStatusIsBuiltAsTheAPIServerReturnsIt(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 4, 5, 6, 7, 891, time.FixedZone("CET", 3600)))
	for name, st := range map[string]*status{
		"new": {generation: 1, projected: map[string]any{}},
		"every field": {
			generation: 7,
			conditions: []metav1.Condition{
				{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonProgressing, Message: "Deployment/ns/w is InProgress: ünïcode \"quoted\" <tag>", ObservedGeneration: 7, LastTransitionTime: at},
				{Type: ConditionReconciling, Status: metav1.ConditionTrue, Reason: ReasonProgressing, LastTransitionTime: at},
				{Type: ConditionDrifted, Status: metav1.ConditionTrue, Reason: ReasonDriftReported, Message: "m"},
			},
			inventory:  child.Inventory{{ID: "ns_w_apps_Deployment", Version: "v1", Desired: "d1", Managed: "m1"}, {ID: "ns_w__Service", Version: "v1"}},
			children:   []childState{{Object: "Deployment/ns/w", Status: "InProgress", Message: "Available: 0/1"}, {Object: "Service/ns/w", Status: "Current"}},
			reconciler: &reconcilerID{ID: "host-1", Templates: "abc"},
			projected: map[string]any{
				"url": "http://x", "replicas": int64(3), "ratio": 0.5, "whole": float64(2), "big": 1e21,
				"nodes": []any{"a", "b"}, "nested": map[string]any{"ready": true, "none": nil, "list": []any{int64(1), map[string]any{"k": "v"}}},
				"inventory": "a projection cannot set it",
			},
		},
		"empty lists": {generation: 2, inventory: child.Inventory{}, children: []childState{}, projected: map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			built, err := st.build()
			if err != nil {
				t.Fatal(err)
			}
			if want := throughJSON(t, st); !reflect.DeepEqual(built, want) {
				t.Errorf("built:\n%#v\nthrough JSON:\n%#v", built, want)
			}
		})
	}
}

// throughJSON is st as JSON read back by the API machinery.
func throughJSON(t *testing.T, st *status) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range st.projected {
		if !reservedStatusFields[k] {
			out[k] = v
		}
	}
	out["observedGeneration"] = st.generation
	out["conditions"] = st.conditions
	if st.conditions == nil {
		out["conditions"] = []metav1.Condition{}
	}
	if st.inventory != nil {
		out["inventory"] = st.inventory
	}
	if st.children != nil {
		out["children"] = st.children
	}
	if st.reconciler != nil {
		out["reconciler"] = st.reconciler
	}
	raw, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := utiljson.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
