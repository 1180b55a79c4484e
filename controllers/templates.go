package controllers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// templates holds the template library in use. With a directory it reloads
// the library when a file changes, and keeps the last good one when a load
// fails, so nothing is rendered (or pruned) from a broken template.
type templates struct {
	mu      sync.RWMutex
	lib     *render.Library
	loadErr error // the newest load's failure; nil when lib is current
}

// digest identifies the templates in use.
func (t *templates) digest() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lib.Digest()
}

func (t *templates) kind(gvk schema.GroupVersionKind) (*render.Kind, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lib.Kind(gvk), t.loadErr
}

// templateWatcher polls a template directory (a mounted ConfigMap swaps
// files through symlinks, which a digest of the contents sees reliably) and
// brings the operator in line with it without a restart.
type templateWatcher struct {
	dir       string
	interval  time.Duration
	templates *templates
	// addKind installs a new kind's CRD and starts its controller, or
	// keeps it waiting to be tried again.
	addKind func(ctx context.Context, kind *render.Kind)
	// resync makes every CR of every kind reconcile again.
	resync func(ctx context.Context)
	digest string
	log    func(msg string, kv ...any)
	logErr func(err error, msg string, kv ...any)
}

// Start polls until ctx ends. It runs on the leader only, with the
// controllers it may add.
func (w *templateWatcher) Start(ctx context.Context) error {
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.reload(ctx)
		}
	}
}

func (w *templateWatcher) NeedLeaderElection() bool { return true }

func (w *templateWatcher) reload(ctx context.Context) {
	fsys := os.DirFS(w.dir)
	digest, err := render.DigestFS(fsys)
	if err != nil || digest == w.digest {
		return
	}
	w.digest = digest
	lib, err := render.Load(fsys)
	if err != nil {
		w.logErr(err, "template reload failed; the last good templates stay in use", "dir", w.dir)
		w.templates.mu.Lock()
		w.templates.loadErr = err
		w.templates.mu.Unlock()
		w.resync(ctx) // every CR reports the failure
		return
	}
	// The new library goes in first: a new kind's controller reconciles
	// with it from its first event.
	var added []*render.Kind
	for _, kind := range lib.Kinds() {
		if old, _ := w.templates.kind(kind.GVK); old == nil {
			added = append(added, kind)
		}
	}
	w.templates.mu.Lock()
	w.templates.lib, w.templates.loadErr = lib, nil
	w.templates.mu.Unlock()
	w.log("templates reloaded", "digest", lib.Digest())
	for _, kind := range added {
		w.addKind(ctx, kind)
	}
	w.resync(ctx)
}

// installCRD server-side applies a kind's CRD and waits until it is served.
func installCRD(ctx context.Context, c client.Client, kind *render.Kind) error {
	crd, err := crdgen.Generate(kind)
	if err != nil {
		return err
	}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: content}
	unstructured.RemoveNestedField(obj.Object, "status")
	unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
	if err := c.Patch(ctx, obj, client.Apply, client.FieldOwner(child.FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply CRD %s: %w", crd.Name, err)
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, live); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == string(apiextensionsv1.Established) && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}

// resyncAll sends every CR of every started kind to its controller.
func resyncAll(ctx context.Context, c client.Reader, channels map[schema.GroupVersionKind]chan event.GenericEvent) {
	for gvk, ch := range channels {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "resync: list CRs", "kind", gvk.String())
			continue
		}
		for i := range list.Items {
			select {
			case ch <- event.GenericEvent{Object: &list.Items[i]}:
			case <-ctx.Done():
				return
			}
		}
	}
}
