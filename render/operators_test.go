package render_test

import (
	"strings"
	"testing"

	"github.com/cuerator/cuerator/render"
)

// kstatus calls another operator's child Current as soon as it exists: the
// kinds that compose one judge it from the status that operator writes,
// not ready (with a reason) until it reports the child ready, whether the
// child is missing, has no status yet or reports otherwise.
func TestOtherOperatorsChildrenAreJudgedByTheirStatus(t *testing.T) {
	lib := loadLibrary(t)
	type observation struct {
		child  map[string]any // the live child; nil: not there
		ready  bool
		reason string
	}
	for _, tc := range []struct {
		cr, key string
		cases   []observation
	}{
		{"../schemas/tests/database/mysql/cr.yaml", "innodbcluster", []observation{
			{nil, false, "InnoDBCluster mycluster is PENDING: 0 of 3 instances online"},
			{map[string]any{"metadata": map[string]any{"name": "mycluster"}}, false, "is PENDING"},
			{map[string]any{"status": map[string]any{"cluster": map[string]any{"status": "ONLINE_PARTIAL", "onlineInstances": int64(2)}}}, false, "is ONLINE_PARTIAL: 2 of 3 instances online"},
			{map[string]any{"status": map[string]any{"cluster": map[string]any{"status": "ONLINE", "onlineInstances": int64(3)}}}, true, ""},
		}},
		{"../examples/monitoring-sample.yaml", "prometheus", []observation{
			{nil, false, "Prometheus prometheus is not available yet"},
			{map[string]any{"status": map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "False", "message": "shard 0: pods not ready"}}}}, false, "Prometheus prometheus: shard 0: pods not ready"},
			{map[string]any{"status": map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "True"}}}}, true, ""},
		}},
		{"../examples/searchcluster-sample.yaml", "elasticsearch", []observation{
			{nil, false, "Elasticsearch quickstart is unknown, phase Pending: 0 nodes available"},
			{map[string]any{"status": map[string]any{"health": "green", "phase": "ApplyingChanges", "availableNodes": int64(1)}}, false, "is green, phase ApplyingChanges"},
			{map[string]any{"status": map[string]any{"health": "yellow", "phase": "Ready", "availableNodes": int64(1)}}, false, "is yellow, phase Ready"},
			{map[string]any{"status": map[string]any{"health": "green", "phase": "Ready", "availableNodes": int64(1)}}, true, ""},
		}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			cr := readCR(t, tc.cr)
			cr.SetNamespace("ops")
			for _, o := range tc.cases {
				r, err := lib.RenderCR(cr)
				if err != nil {
					t.Fatal(err)
				}
				obs := render.Observed{Children: map[string]any{}}
				if o.child != nil {
					obs.Children[tc.key] = o.child
				}
				if err := r.Observe(obs); err != nil {
					t.Fatal(err)
				}
				got, judged := r.Readiness[tc.key]
				if !judged || got.Ready != o.ready || !strings.Contains(got.Reason, o.reason) {
					t.Errorf("observing %v: readiness %+v (judged %v), want ready %v with a reason saying %q", o.child, got, judged, o.ready, o.reason)
				}
			}
		})
	}
}
