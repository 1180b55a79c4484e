package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/render"
)

// Two operator processes on one CR (overlapping shard selectors, a second
// `cuerator run`, an upgrade in flight) undo each other: one with other
// templates prunes what the other applies. Each process names itself, and
// the templates it renders with, in the status it writes (status.reconciler).

// contestRetries is how many retries (ConflictRetry, 30 s by default) a
// contest lasts after its last evidence, and how long a newcomer with other
// templates holds its prunes for another process to answer.
const contestRetries = 4

func (r *Reconciler) contestWindow() time.Duration { return contestRetries * r.ConflictRetry }

// contention is what this process makes of who else writes a CR's status.
type contention struct {
	// other is the other process, when there is one.
	other *reconcilerID
	// hold: prune nothing, and look again soon.
	hold bool
	// report: say Contested (condition and event): two live processes.
	report bool
	// claim: write the status with this process's name even if nothing
	// else in it changed, so that the other process hears of this one.
	claim bool
}

// contention decides, from the status as read and what this process
// remembers, whether another process reconciles cr too:
//   - it wrote the status before and finds another's name there now, in
//     the API server too (the cache may not have brought its own write
//     yet, and a newly elected leader finds its predecessor's name there
//     until it does): the other wrote since. Both are alive: report, hold,
//     claim it back (once per retry, so two contenders write at most that
//     often);
//   - it has not written yet and the last writer rendered other templates:
//     a second operator, or an upgrade in flight. It claims the status and
//     holds its prunes for the contest window: the other answers, or was
//     gone;
//   - it has not written yet and the last writer rendered the same
//     templates: the process before it (a restart, a failover) or one that
//     agrees with it; it takes over with its next write;
//   - a contest it knows of lasts until the contest window after its last
//     evidence.
func (r *Reconciler) contention(ctx context.Context, cr *unstructured.Unstructured, kind *render.Kind, st *status) contention {
	if !kind.KeepsReconciler() {
		return contention{}
	}
	key := client.ObjectKeyFromObject(cr)
	mine := r.Templates.digest()
	writer := st.reconciler
	if writer != nil && writer.ID != r.Identity {
		switch {
		case r.written.has(key):
			live, err := r.liveWriter(ctx, cr)
			if err != nil {
				// Unconfirmed: prune nothing until it is.
				return contention{hold: true}
			}
			if live == r.Identity {
				return contention{} // the cache lags behind this process's write
			}
			r.contests.seen(key, writer)
			return contention{other: writer, hold: true, report: true, claim: true}
		case writer.Templates != mine:
			if r.contests.claimedFor(key) < r.contestWindow() {
				return contention{other: writer, hold: true, claim: true}
			}
		}
		return contention{}
	}
	if other, ok := r.contests.active(key, r.contestWindow()); ok {
		return contention{other: other, hold: true, report: true}
	}
	return contention{}
}

// liveWriter reads, from the API server, the name of the process that last
// wrote cr's status.
func (r *Reconciler) liveWriter(ctx context.Context, cr *unstructured.Unstructured) (string, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(cr.GroupVersionKind())
	if err := r.Reader.Get(ctx, client.ObjectKeyFromObject(cr), live); err != nil {
		return "", err
	}
	return statusWriter(live), nil
}

// contests remembers, per CR, the other process last seen writing its
// status and when, and when this process claimed it as a newcomer.
type contests struct {
	mu     sync.Mutex
	others map[types.NamespacedName]contest
	claims map[types.NamespacedName]time.Time
}

type contest struct {
	other *reconcilerID
	at    time.Time
}

func (c *contests) seen(key types.NamespacedName, other *reconcilerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.others == nil {
		c.others = map[types.NamespacedName]contest{}
	}
	c.others[key] = contest{other: other, at: time.Now()}
}

// active returns the other process of a contest seen within window.
func (c *contests) active(key types.NamespacedName, window time.Duration) (*reconcilerID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.others[key]
	if !ok || time.Since(k.at) >= window {
		delete(c.others, key)
		return nil, false
	}
	return k.other, true
}

// known reports whether a contest on key is remembered.
func (c *contests) known(key types.NamespacedName) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.others[key]
	return ok
}

// claimedFor returns how long ago this process first claimed key as a
// newcomer, starting the clock now if it had not.
func (c *contests) claimedFor(key types.NamespacedName) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claims == nil {
		c.claims = map[types.NamespacedName]time.Time{}
	}
	at, ok := c.claims[key]
	if !ok {
		c.claims[key] = time.Now()
		return 0
	}
	return time.Since(at)
}

func (c *contests) forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.others, key)
	delete(c.claims, key)
}
