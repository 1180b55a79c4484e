package apply

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
)

// OwnerIndex is the cache index of children by the CR their owner labels
// name: "<owner-kind label>/<owner name>", in the child's namespace.
const OwnerIndex = "cuerator.dev/owner"

// IndexOwner adds OwnerIndex to indexer's informer of obj's kind (obj as
// CachedObject makes it). Every child kind is indexed so that children no
// inventory names are still found.
func IndexOwner(ctx context.Context, indexer client.FieldIndexer, obj client.Object) error {
	return indexer.IndexField(ctx, obj, OwnerIndex, func(o client.Object) []string {
		l := o.GetLabels()
		if l[child.LabelOwnerKind] == "" || l[child.LabelOwnerName] == "" {
			return nil
		}
		return []string{l[child.LabelOwnerKind] + "/" + l[child.LabelOwnerName]}
	})
}

// labelled returns the inventory entries of the cached children of req's
// kinds that carry the owner's labels: what the owner may have created
// without recording it. It reads the cache only.
func (a *Applier) labelled(ctx context.Context, req Request) (child.Inventory, error) {
	var found child.Inventory
	key := req.Owner.IndexKey()
	for _, gvk := range req.ChildKinds {
		// Their names alone: read in the form the cache holds them, not
		// converted.
		list := cachedList(a.children.Scheme(), gvk)
		// Read, never changed: no copy of the cache's objects.
		opts := []client.ListOption{client.MatchingFields{OwnerIndex: key}, client.UnsafeDisableDeepCopy}
		if req.Owner.Namespace != "" {
			opts = append(opts, client.InNamespace(req.Owner.Namespace))
		}
		if err := a.fromCache(ctx, func(ctx context.Context) error { return a.children.List(ctx, list, opts...) }); err != nil {
			if isNotServed(err) || errors.As(err, new(*unsyncedError)) {
				// No objects of a kind the cluster does not serve; a cache
				// that does not sync has none to show now, and a later
				// reconcile looks again.
				continue
			}
			return nil, fmt.Errorf("list %s children: %w", gvk.Kind, err)
		}
		if err := meta.EachListItem(list, func(item runtime.Object) error {
			obj, err := meta.Accessor(item)
			if err != nil {
				return err
			}
			found = append(found, child.EntryFor(gvk, obj.GetNamespace(), obj.GetName()))
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list %s children: %w", gvk.Kind, err)
		}
	}
	return found, nil
}
