package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/render"
)

// settled is what a reconcile that ended well saw of its CR: enough for the
// next one to know, without a render or a request, that nothing it reads
// has changed since.
type settled struct {
	uid types.UID
	// version is the CR's resourceVersion once its status was written. A
	// spec, label or annotation change that landed between the reconcile's
	// read and that write is in this version too, unrendered: generation and
	// meta say what the reconcile rendered.
	version string
	// generation and meta (labels and annotations, digested) are those of
	// the CR the reconcile rendered.
	generation int64
	meta       string
	// kind is the template the CR was rendered with; a reload replaces it.
	kind *render.Kind
	// children are the children as the status was computed from them.
	children []apply.Seen
	// podSelector and pods are the pods the status projection read.
	podSelector map[string]string
	pods        string
}

// settledCRs remembers the settled state of each CR of one kind.
type settledCRs struct {
	mu  sync.Mutex
	crs map[types.NamespacedName]settled
}

func (s *settledCRs) get(key types.NamespacedName) (settled, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.crs[key]
	return v, ok
}

func (s *settledCRs) put(key types.NamespacedName, v settled) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crs == nil {
		s.crs = map[types.NamespacedName]settled{}
	}
	s.crs[key] = v
}

func (s *settledCRs) drop(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.crs, key)
}

// unchanged reports whether cr, its template, its children and the pods
// its status reads are all as the last good reconcile left them: a resync,
// or an event that changed nothing a reconcile reads.
func (r *Reconciler) unchanged(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind) bool {
	s, ok := r.settled.get(client.ObjectKeyFromObject(cr))
	if !ok || s.uid != cr.GetUID() || s.version != cr.GetResourceVersion() || s.kind != kind ||
		s.generation != cr.GetGeneration() || s.meta != metaDigest(cr) {
		return false
	}
	if !r.Applier.Unchanged(ctx, kind.Owner(cr), s.children, r.Children.kinds()) {
		return false
	}
	if s.podSelector == nil {
		return true
	}
	pods, err := r.podNames(ctx, cr, s.podSelector)
	return err == nil && digestNames(pods) == s.pods
}

// podNames lists the names of the live pods selector selects, from the
// cache. It looks them up by one of the selector's labels (podLabelIndex):
// the cache would otherwise match the selector against every pod of the
// namespace, at every reconcile of every CR in it. The label whose value
// is the CR's name, where there is one, selects the fewest pods.
func (r *Reconciler) podNames(ctx context.Context, cr *unstructured.Unstructured, selector map[string]string) ([]string, error) {
	keys := slices.Sorted(maps.Keys(selector))
	if len(keys) == 0 {
		return nil, nil
	}
	by := keys[0]
	for _, k := range keys {
		if selector[k] == cr.GetName() {
			by = k
			break
		}
	}
	opts := []client.ListOption{client.InNamespace(cr.GetNamespace()), client.MatchingLabels(selector)}
	if r.PodsIndexed {
		opts = append(opts, client.MatchingFields{podLabelIndex: by + "=" + selector[by]})
	}
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, pods, opts...); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp.IsZero() {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// podLabelIndex indexes pods by each of their labels, as key=value.
const podLabelIndex = "cuerator.dev/pod-label"

// indexPodLabels registers podLabelIndex with the cache that holds pods.
func indexPodLabels(ctx context.Context, indexer client.FieldIndexer) error {
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	return indexer.IndexField(ctx, pod, podLabelIndex, func(o client.Object) []string {
		out := make([]string, 0, len(o.GetLabels()))
		for k, v := range o.GetLabels() {
			out = append(out, k+"="+v)
		}
		return out
	})
}

// metaDigest digests cr's labels and annotations, which a template may read.
func metaDigest(cr *unstructured.Unstructured) string {
	var pairs []string
	for k, v := range cr.GetLabels() {
		pairs = append(pairs, "l:"+k+"="+v)
	}
	for k, v := range cr.GetAnnotations() {
		pairs = append(pairs, "a:"+k+"="+v)
	}
	return digestNames(pairs)
}

func digestNames(names []string) string {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, n := range sorted {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// statusWrites remembers when each CR's status was last written, and the
// CR's resourceVersion that write returned.
type statusWrites struct {
	mu   sync.Mutex
	last map[types.NamespacedName]statusWrite
}

type statusWrite struct {
	at      time.Time
	version string
}

func (w *statusWrites) mark(key types.NamespacedName, version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[types.NamespacedName]statusWrite{}
	}
	w.last[key] = statusWrite{at: time.Now(), version: version}
}

// holdFor returns how long a write of key must wait to be interval after
// its last one; 0 when it need not wait.
func (w *statusWrites) holdFor(key types.NamespacedName, interval time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.last[key]
	if !ok {
		return 0
	}
	return max(0, interval-time.Since(last.at))
}

// version is the CR's resourceVersion after this process's last status
// write of key, "" when it wrote none.
func (w *statusWrites) version(key types.NamespacedName) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[key].version
}

// has reports whether this process wrote key's status.
func (w *statusWrites) has(key types.NamespacedName) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.last[key]
	return ok
}

func (w *statusWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, key)
}

// heldStatus is a status write put off: a change of progress details alone,
// too soon after the last write.
type heldStatus struct{ wait time.Duration }

func (h *heldStatus) Error() string { return fmt.Sprintf("status write held for %s", h.wait) }
