package controllers

import (
	"encoding/json"
	"fmt"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/child"
)

// status is the status a reconcile is about to write. Everything it does not
// recompute (inventory, projected fields) is carried over, because the
// status apply removes whatever it leaves out.
type status struct {
	generation int64
	conditions []metav1.Condition
	inventory  child.Inventory
	children   []childState
	projected  map[string]any
	// reconciler is the process that wrote the status last (as read), and
	// then the one about to write it.
	reconciler *reconcilerID
	// claim writes the status even when only reconciler changed: this
	// process holds back its prune until its own status stands.
	claim bool
}

// reconcilerID is status.reconciler: which operator process, with which
// templates, wrote the status.
type reconcilerID struct {
	ID        string `json:"id"`
	Templates string `json:"templates"`
}

// childState is one entry of status.children.
type childState struct {
	Object  string `json:"object"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Fields of status that cuerator itself writes; a template's projection
// cannot set them.
var reservedStatusFields = map[string]bool{"observedGeneration": true, "conditions": true, "inventory": true, "children": true, "reconciler": true}

func newStatus(cr *unstructured.Unstructured) *status {
	st := &status{generation: cr.GetGeneration(), projected: map[string]any{}}
	old, _, _ := unstructured.NestedMap(cr.Object, "status")
	for k, v := range old {
		switch {
		case k == "inventory":
			st.inventory = child.InventoryFromStatus(cr)
		case k == "children":
			st.children = childStatesFrom(v)
		case k == "reconciler":
			if m, ok := v.(map[string]any); ok {
				id, _ := m["id"].(string)
				templates, _ := m["templates"].(string)
				st.reconciler = &reconcilerID{ID: id, Templates: templates}
			}
		case !reservedStatusFields[k]:
			st.projected[k] = v
		}
	}
	if conds, ok := old["conditions"].([]any); ok {
		for _, c := range conds {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			var cond metav1.Condition
			if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cond) == nil {
				st.conditions = append(st.conditions, cond)
			}
		}
	}
	return st
}

func (s *status) set(typ string, value metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.conditions, metav1.Condition{
		Type: typ, Status: value, Reason: reason, Message: cut(message, maxConditionMessage), ObservedGeneration: s.generation,
	})
}

// Message bounds: the events API refuses a note over 1 KiB (the event is
// then lost), and a condition message is read in kubectl's and GitOps
// tools' output, where a few lines say what is wrong.
const (
	maxEventNote        = 1024
	maxConditionMessage = 4096
)

// cut returns msg whole when it fits in limit bytes, else as much of it as
// fits with a note saying how much was cut, never splitting a character.
func cut(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	note := fmt.Sprintf(" … [cut: %d of %d bytes shown]", 0, len(msg))
	keep := limit - len(note) - 4 // room for the shown count's digits
	for keep > 0 && !utf8.RuneStart(msg[keep]) {
		keep--
	}
	return msg[:keep] + fmt.Sprintf(" … [cut: %d of %d bytes shown]", keep, len(msg))
}

// drift sets Drifted from the drifts left in place.
func (s *status) drift(drifts []apply.Drift) {
	var left []string
	for _, d := range drifts {
		if !d.Corrected {
			left = append(left, d.String())
		}
	}
	if len(left) == 0 {
		meta.RemoveStatusCondition(&s.conditions, ConditionDrifted)
		return
	}
	s.set(ConditionDrifted, metav1.ConditionTrue, ReasonDriftReported, strings.Join(left, "; "))
}

// templates records whether the newest templates loaded.
func (s *status) templates(loadErr error) {
	if loadErr == nil {
		meta.RemoveStatusCondition(&s.conditions, ConditionTemplatesLoaded)
		return
	}
	s.set(ConditionTemplatesLoaded, metav1.ConditionFalse, ReasonTemplateLoadFailed, templatesMessage(loadErr))
}

func templatesMessage(loadErr error) string {
	return "the last good template stays in use: " + loadErr.Error()
}

// contest sets Contested while c reports another process on the CR, and
// removes it otherwise. The message reads the same in both processes, so
// that neither rewrites the other's.
func (s *status) contest(c contention, me, templates string) {
	if !c.report {
		meta.RemoveStatusCondition(&s.conditions, ConditionContested)
		return
	}
	ids := []string{me, c.other.ID}
	sort.Strings(ids)
	which := "the same templates"
	if c.other.Templates != templates {
		which = "other templates"
	}
	s.set(ConditionContested, metav1.ConditionTrue, ReasonContested, fmt.Sprintf(
		"operator processes %s and %s both write this status, with %s: two operators reconcile this CR (overlapping shard selectors, a second cuerator run, an upgrade in flight); neither prunes while both do", ids[0], ids[1], which))
}

// stalled records an error that retrying cannot fix.
func (s *status) stalled(reason, message string) {
	s.set(ConditionReady, metav1.ConditionFalse, reason, message)
	s.set(ConditionStalled, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(&s.conditions, ConditionReconciling)
}

// failing records an error that a retry with backoff may fix.
func (s *status) failing(reason, message string) {
	s.set(ConditionReady, metav1.ConditionFalse, reason, message)
	s.set(ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(&s.conditions, ConditionStalled)
}

// health sets Ready from the children: True only when every child is
// Current and none waits, otherwise False naming the first child that
// waits, else the first that is not Current. A child that failed makes the
// CR Stalled.
func (s *status) health(waits, children []apply.Health) {
	all := append(append([]apply.Health{}, waits...), children...)
	s.children = make([]childState, len(all))
	for i, h := range all {
		s.children[i] = childState{Object: h.Object, Status: string(h.Status)}
		if !h.Healthy() {
			s.children[i].Message = h.Message
		}
	}
	meta.RemoveStatusCondition(&s.conditions, ConditionStalled)
	if len(waits) > 0 {
		msg := waits[0].Object + " " + waits[0].Message
		s.set(ConditionReady, metav1.ConditionFalse, ReasonWaiting, msg)
		s.set(ConditionReconciling, metav1.ConditionTrue, ReasonWaiting, msg)
		return
	}
	for _, h := range children {
		if h.Healthy() {
			continue
		}
		msg := fmt.Sprintf("%s is %s", h.Object, h.Status)
		if h.Message != "" {
			msg += ": " + h.Message
		}
		if h.Status == kstatus.FailedStatus {
			s.stalled(ReasonChildFailed, msg)
			return
		}
		s.set(ConditionReady, metav1.ConditionFalse, ReasonProgressing, msg)
		s.set(ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, msg)
		return
	}
	s.set(ConditionReady, metav1.ConditionTrue, ReasonSucceeded, countOf(len(children), "child", "children")+" applied and healthy")
	meta.RemoveStatusCondition(&s.conditions, ConditionReconciling)
}

// build returns the status as the API server would return it (JSON
// numbers as int64), so that it compares equal to an unchanged one. What
// cuerator writes itself is built in that form directly; the template's
// fields, of any shape, go through JSON.
func (s *status) build() (map[string]any, error) {
	out := map[string]any{}
	if len(s.projected) > 0 {
		raw, err := json.Marshal(s.projected)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		var projected map[string]any
		if err := utiljson.Unmarshal(raw, &projected); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		for k, v := range projected {
			if !reservedStatusFields[k] {
				out[k] = v
			}
		}
	}
	out["observedGeneration"] = s.generation
	conditions := make([]any, len(s.conditions))
	for i, c := range s.conditions {
		conditions[i] = conditionValue(c)
	}
	out["conditions"] = conditions
	if s.inventory != nil {
		entries := make([]any, len(s.inventory))
		for i, e := range s.inventory {
			entry := map[string]any{"id": e.ID, "v": e.Version}
			if e.Desired != "" {
				entry["d"] = e.Desired
			}
			if e.Managed != "" {
				entry["m"] = e.Managed
			}
			entries[i] = entry
		}
		out["inventory"] = entries
	}
	if s.children != nil {
		children := make([]any, len(s.children))
		for i, c := range s.children {
			state := map[string]any{"object": c.Object, "status": c.Status}
			if c.Message != "" {
				state["message"] = c.Message
			}
			children[i] = state
		}
		out["children"] = children
	}
	if s.reconciler != nil {
		out["reconciler"] = map[string]any{"id": s.reconciler.ID, "templates": s.reconciler.Templates}
	}
	return out, nil
}

// conditionValue is c as its JSON reads back: metav1.Condition's fields,
// observedGeneration left out when 0, the time in whole seconds, UTC.
func conditionValue(c metav1.Condition) map[string]any {
	m := map[string]any{"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message, "lastTransitionTime": nil}
	if !c.LastTransitionTime.IsZero() {
		m["lastTransitionTime"] = c.LastTransitionTime.UTC().Format(time.RFC3339)
	}
	if c.ObservedGeneration != 0 {
		m["observedGeneration"] = c.ObservedGeneration
	}
	return m
}

// childStatesFrom reads status.children back, so that a reconcile which
// does not look at health keeps it.
func childStatesFrom(v any) []childState {
	list, _ := v.([]any)
	out := make([]childState, 0, len(list))
	for _, item := range list {
		m, _ := item.(map[string]any)
		var c childState
		c.Object, _ = m["object"].(string)
		c.Status, _ = m["status"].(string)
		c.Message, _ = m["message"].(string)
		if c.Object != "" {
			out = append(out, c)
		}
	}
	return out
}

// progressInterval is how often a CR that is progressing has a change of
// progress details alone written: its conditions' messages, status.children
// and the template's projected fields. A change of a condition's status or
// reason, of the generation or of the inventory is written at once, so a new
// CR's status is written twice (applied, then Ready) unless its children
// take longer than this.
const progressInterval = 10 * time.Second

// progressOnly reports whether going from old to desired changes nothing but
// progress details while the CR is still progressing.
func progressOnly(old, desired map[string]any) bool {
	if old == nil || !progressing(desired) {
		return false
	}
	return equality.Semantic.DeepEqual(outcome(old), outcome(desired))
}

// progressing reports whether st says Ready=False, reason Progressing.
func progressing(st map[string]any) bool {
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == ConditionReady {
			return m["status"] == string(metav1.ConditionFalse) && m["reason"] == ReasonProgressing
		}
	}
	return false
}

// outcome is what of a status is written at once when it changes.
func outcome(st map[string]any) map[string]any {
	out := map[string]any{"observedGeneration": st["observedGeneration"], "inventory": st["inventory"]}
	var conds []any
	list, _ := st["conditions"].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			conds = append(conds, map[string]any{"type": m["type"], "status": m["status"], "reason": m["reason"]})
		}
	}
	out["conditions"] = conds
	return out
}

// progressing: the status says Ready=False, reason Progressing.
func (s *status) progressing() bool {
	c := meta.FindStatusCondition(s.conditions, ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonProgressing
}

// ready: the status says the CR is Ready.
func (s *status) ready() bool {
	return meta.IsStatusConditionTrue(s.conditions, ConditionReady)
}

// message is the message of condition typ, "" when it is not set.
func (s *status) message(typ string) string {
	if c := meta.FindStatusCondition(s.conditions, typ); c != nil {
		return c.Message
	}
	return ""
}

// countOf says n things in English: "1 child", "3 children", "no children".
func countOf(n int, one, many string) string {
	switch n {
	case 0:
		return "no " + many
	case 1:
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
