package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cuerator/cuerator/child"
)

// record is what the Applier knows of one child, to tell without a request
// that it is unchanged. The digests are also kept in the CR's inventory,
// which is how a restarted operator knows them; the resource versions are
// known to this process only.
type record struct {
	desired, managed string
	// written is the resourceVersion of this process's last write: an older
	// one in the cache is the cache lagging, not a change.
	written string
	// verified is the resourceVersion last found unchanged: while the
	// cache holds that version, the child needs no look at all.
	verified string
}

type recordKey struct {
	owner types.NamespacedName
	childKey
}

// childKey is one child of an owner.
type childKey struct {
	uid   types.UID // a CR deleted and created again starts afresh
	child string
}

// memory holds the records of every child this process applied or checked,
// by owner: forgetting a deleted CR's is one delete, not a scan of every
// child's.
type memory struct {
	mu      sync.Mutex
	records map[types.NamespacedName]map[childKey]record
}

func keyOf(owner child.Owner, id string) recordKey {
	return recordKey{owner: owner.Key(), childKey: childKey{uid: owner.UID, child: id}}
}

func (m *memory) get(k recordKey) (record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[k.owner][k.childKey]
	return r, ok
}

func (m *memory) put(k recordKey, r record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = map[types.NamespacedName]map[childKey]record{}
	}
	children := m.records[k.owner]
	if children == nil {
		children = map[childKey]record{}
		m.records[k.owner] = children
	}
	children[k.childKey] = r
}

func (m *memory) drop(k recordKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records[k.owner], k.childKey)
	if len(m.records[k.owner]) == 0 {
		delete(m.records, k.owner)
	}
}

func (m *memory) forget(owner types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, owner)
}

// digest is the hex form of the first 8 bytes of a SHA-256: enough to tell
// versions of one child apart, short enough to keep in status.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// objectDigest is the digest of a desired object.
func objectDigest(obj *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return "", err
	}
	return digest(b), nil
}

// Seen is a child as a reconcile read it from the cache.
type Seen struct {
	Object *unstructured.Unstructured // identifies it: kind, namespace, name
	// Version is the resourceVersion read, "" when the cache did not hold it.
	Version string
}

// SeenAt is obj, by its identity alone, read at version: what a settled CR
// keeps of each child, for as long as the process runs, at a few bytes
// rather than a copy of the rendered object.
func SeenAt(obj *unstructured.Unstructured, version string) Seen {
	id := &unstructured.Unstructured{}
	id.SetGroupVersionKind(obj.GroupVersionKind())
	id.SetNamespace(obj.GetNamespace())
	id.SetName(obj.GetName())
	return Seen{Object: id, Version: version}
}

// Unchanged reports, from the cache alone, whether the owner's children are
// exactly as a reconcile last read them (seen) and no other child carries
// the owner's labels. Then a reconcile has nothing to do for the children:
// no render, no request.
func (a *Applier) Unchanged(ctx context.Context, owner child.Owner, seen []Seen, kinds []schema.GroupVersionKind) bool {
	ids := make(child.Inventory, 0, len(seen))
	for _, s := range seen {
		version, err := a.cachedVersion(ctx, s.Object)
		if err != nil || version != s.Version {
			return false
		}
		ids = append(ids, child.EntryOf(s.Object))
	}
	found, err := a.labelled(ctx, Request{Owner: owner, ChildKinds: kinds})
	return err == nil && len(found.Without(ids)) == 0
}
