package child

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// InventoryEntry names one applied child, in the format Flux's
// kustomize-controller keeps: id is namespace_name_group_kind, v the version.
// Desired and Managed, when set, are what a reconcile needs to know that the
// child is unchanged without a request: digests of the child as last
// applied and of the fields cuerator set as the API server stored them.
// They live in the CR's status, so they survive a restart or a failover.
type InventoryEntry struct {
	ID      string `json:"id"`
	Version string `json:"v"`
	Desired string `json:"d,omitempty"`
	Managed string `json:"m,omitempty"`
}

// Inventory is the set of children a CR owns, kept in its status so that
// children the template stops producing can be pruned.
type Inventory []InventoryEntry

// EntryOf returns the inventory entry for obj.
func EntryOf(obj *unstructured.Unstructured) InventoryEntry {
	return EntryFor(obj.GroupVersionKind(), obj.GetNamespace(), obj.GetName())
}

// EntryFor returns the inventory entry for the object of kind gvk named
// namespace/name.
func EntryFor(gvk schema.GroupVersionKind, namespace, name string) InventoryEntry {
	return InventoryEntry{
		ID:      strings.Join([]string{namespace, name, gvk.Group, gvk.Kind}, "_"),
		Version: gvk.Version,
	}
}

// InventoryOf returns the sorted inventory of objs.
func InventoryOf(objs []*unstructured.Unstructured) Inventory {
	inv := make(Inventory, 0, len(objs))
	for _, o := range objs {
		inv = append(inv, EntryOf(o))
	}
	inv.Sort()
	return inv
}

// Sort orders inv by id, the order kept in status.
func (inv Inventory) Sort() {
	sort.Slice(inv, func(i, j int) bool { return inv[i].ID < inv[j].ID })
}

// Without returns the entries of inv whose id is not in other.
func (inv Inventory) Without(other Inventory) Inventory {
	keep := map[string]bool{}
	for _, e := range other {
		keep[e.ID] = true
	}
	var out Inventory
	for _, e := range inv {
		if !keep[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

// Union returns the sorted entries of inv and other, each id once.
func (inv Inventory) Union(other Inventory) Inventory {
	out := append(Inventory{}, inv...)
	out = append(out, other.Without(inv)...)
	out.Sort()
	return out
}

// Object returns a stub of the entry's object, enough to read or delete it.
func (e InventoryEntry) Object() (*unstructured.Unstructured, error) {
	parts := strings.Split(e.ID, "_")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
		return nil, fmt.Errorf("inventory: malformed id %q", e.ID)
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: parts[2], Version: e.Version, Kind: parts[3]})
	obj.SetNamespace(parts[0])
	obj.SetName(parts[1])
	return obj, nil
}

// InventoryFromStatus reads status.inventory of a CR; a malformed entry is
// dropped rather than trusted.
func InventoryFromStatus(cr *unstructured.Unstructured) Inventory {
	raw, _, _ := unstructured.NestedSlice(cr.Object, "status", "inventory")
	var inv Inventory
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		id, _ := m["id"].(string)
		v, _ := m["v"].(string)
		d, _ := m["d"].(string)
		mf, _ := m["m"].(string)
		if id != "" && v != "" {
			inv = append(inv, InventoryEntry{ID: id, Version: v, Desired: d, Managed: mf})
		}
	}
	return inv
}

// Find returns the entry of inv with id.
func (inv Inventory) Find(id string) (InventoryEntry, bool) {
	for _, e := range inv {
		if e.ID == id {
			return e, true
		}
	}
	return InventoryEntry{}, false
}

// WithoutDigests returns inv without the digests, for a status whose
// schema has no room for them.
func (inv Inventory) WithoutDigests() Inventory {
	out := make(Inventory, len(inv))
	for i, e := range inv {
		out[i] = InventoryEntry{ID: e.ID, Version: e.Version}
	}
	return out
}
