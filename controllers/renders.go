package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/render"
)

// keptRenders holds the render of each CR of one kind that is converging:
// the reconciles that follow its children until it is Ready (a Deployment's
// rollout, a Certificate issued) render the same CR with the same template,
// and take the kept render instead. A CR that is Ready, gone or suspended
// keeps none: a fleet at rest holds no renders.
type keptRenders struct {
	mu      sync.Mutex
	renders map[types.NamespacedName]keptRender
}

// keptRender is a render and what it was rendered from: everything of the
// CR a template reads (inputOf) is in its uid, generation (the spec) and
// meta digest (labels and annotations).
type keptRender struct {
	uid        types.UID
	generation int64
	meta       string
	kind       *render.Kind
	rendered   *render.Rendered
	at         time.Time
}

const (
	// maxKeptRenders bounds the renders kept per kind: a few MiB for
	// children of WebApp's size.
	maxKeptRenders = 1024
	// keptRenderAge is how long a render is kept when others wait for room:
	// a CR that never becomes Ready does not hold its place for good.
	keptRenderAge = 10 * time.Minute
)

// get returns a copy of the render kept for key, if it was made from what
// s says the CR is now.
func (k *keptRenders) get(key types.NamespacedName, s *settled) *render.Rendered {
	k.mu.Lock()
	defer k.mu.Unlock()
	kept, ok := k.renders[key]
	if !ok {
		return nil
	}
	if kept.uid != s.uid || kept.generation != s.generation || kept.meta != s.meta || kept.kind != s.kind {
		delete(k.renders, key)
		return nil
	}
	return kept.rendered.Clone()
}

// put keeps a copy of rendered for key. When every place is taken, renders
// older than keptRenderAge make room; if none is, rendered is not kept: the
// CRs kept first are the first to converge.
func (k *keptRenders) put(key types.NamespacedName, s *settled, rendered *render.Rendered, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.renders == nil {
		k.renders = map[types.NamespacedName]keptRender{}
	}
	if _, ok := k.renders[key]; !ok && len(k.renders) >= maxKeptRenders {
		for other, kept := range k.renders {
			if now.Sub(kept.at) > keptRenderAge {
				delete(k.renders, other)
			}
		}
		if len(k.renders) >= maxKeptRenders {
			return
		}
	}
	k.renders[key] = keptRender{uid: s.uid, generation: s.generation, meta: s.meta, kind: s.kind,
		rendered: rendered.Clone(), at: now}
}

func (k *keptRenders) drop(key types.NamespacedName) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.renders, key)
}
