package controllers

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/cuerator/cuerator/apply"
)

// Phases of a reconcile, as cuerator_reconcile_duration_seconds labels
// them. Pruning runs inside the engine's apply, so it is timed with it.
const (
	phaseRender = "render"
	phaseApply  = "apply"
	phaseStatus = "status"
)

// Labels never name a CR, so a series count grows with the kinds and their
// child kinds only. The kind label is the controller's name, so these series
// join controller-runtime's controller_runtime_*{controller=...}.
var (
	reconcilePhaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cuerator_reconcile_duration_seconds",
		Help: "Time one reconcile spends per phase: render (CUE), apply (server-side apply, drift checks and pruning) and status (building and writing the status).",
		// 1ms to about 33s: an unchanged apply takes milliseconds, a slow one
		// runs into the reconcile timeout.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"kind", "phase"})
	childrenGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cuerator_children",
		Help: "Children in the inventories of the CRs this process reconciles.",
	}, []string{"kind"})
	driftTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cuerator_drift_total",
		Help: "Children found changed by someone else since cuerator applied them.",
	}, []string{"kind", "child_kind"})
	pruneTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cuerator_prune_total",
		Help: "Children deleted because the template no longer produces them.",
	}, []string{"kind", "child_kind"})
	renderErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cuerator_render_errors_total",
		Help: "Renders that failed on an invalid spec or a template error.",
	}, []string{"kind"})
	kindWaiting = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cuerator_kind_waiting",
		Help: "1 while a kind of the templates cannot start (its CRD missing or refused, its CRs not listable) and is retried; 0 once it serves.",
	}, []string{"kind"})
	adoptionRefusedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cuerator_adoption_refused_total",
		Help: "Children left alone because they exist and belong to someone else.",
	}, []string{"kind"})
)

func init() {
	metrics.Registry.MustRegister(reconcilePhaseSeconds, childrenGauge, driftTotal, pruneTotal, renderErrorsTotal, adoptionRefusedTotal, kindWaiting)
}

func kindLabel(gvk schema.GroupVersionKind) string {
	return strings.ToLower(gvk.Kind + "." + gvk.Group)
}

// observePhase starts timing a phase; calling the result records it.
func observePhase(gvk schema.GroupVersionKind, phase string) func() {
	start := time.Now()
	return func() {
		reconcilePhaseSeconds.WithLabelValues(kindLabel(gvk), phase).Observe(time.Since(start).Seconds())
	}
}

func countRenderError(gvk schema.GroupVersionKind) {
	renderErrorsTotal.WithLabelValues(kindLabel(gvk)).Inc()
}

// countApply records what one apply did: drifts, prunes, refused adoptions,
// and the CR's inventory size for cuerator_children.
func countApply(gvk schema.GroupVersionKind, cr types.NamespacedName, res *apply.Result) {
	kind := kindLabel(gvk)
	for _, d := range res.Drifts {
		driftTotal.WithLabelValues(kind, childKind(d.Object)).Inc()
	}
	for _, c := range res.Changes {
		if c.Action == apply.ActionDelete {
			pruneTotal.WithLabelValues(kind, childKind(c.Object)).Inc()
		}
	}
	if n := len(res.Conflicts); n > 0 {
		adoptionRefusedTotal.WithLabelValues(kind).Add(float64(n))
	}
	inventories.set(kind, cr, len(res.Inventory))
}

// forgetChildren drops a deleted CR's children from cuerator_children.
func forgetChildren(gvk schema.GroupVersionKind, cr types.NamespacedName) {
	inventories.set(kindLabel(gvk), cr, 0)
}

// childKind is the kind in the engine's "Kind/namespace/name" object names.
func childKind(object string) string {
	kind, _, _ := strings.Cut(object, "/")
	return kind
}

// inventories remembers each CR's inventory size, so that cuerator_children
// is a sum over CRs that a reconcile of one CR can update alone.
var inventories = &inventorySizes{sizes: map[inventoryKey]int{}}

type inventoryKey struct {
	kind string
	cr   types.NamespacedName
}

type inventorySizes struct {
	mu    sync.Mutex
	sizes map[inventoryKey]int
}

// set records n children for cr; 0 forgets it.
func (s *inventorySizes) set(kind string, cr types.NamespacedName, n int) {
	key := inventoryKey{kind, cr}
	s.mu.Lock()
	defer s.mu.Unlock()
	if delta := n - s.sizes[key]; delta != 0 {
		childrenGauge.WithLabelValues(kind).Add(float64(delta))
	}
	if n == 0 {
		delete(s.sizes, key)
	} else {
		s.sizes[key] = n
	}
}
