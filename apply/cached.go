package apply

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The engine reads children as unstructured objects, but the cache of
// children holds the kinds Kubernetes serves (Deployments, Services,
// Secrets...) typed: a Deployment held typed takes less than half the
// memory of its unstructured form (5.8 against 12.4 KiB), and with
// thousands of children the cache is most of the operator's memory. Kinds
// the scheme does not know, other operators' CRs, stay unstructured.

// CachedObject is an empty object of gvk in the form the cache of children
// holds it: what its informer, its index and its watch are registered with.
func CachedObject(scheme *runtime.Scheme, gvk schema.GroupVersionKind) client.Object {
	if scheme.Recognizes(gvk) {
		if obj, err := scheme.New(gvk); err == nil {
			if typed, ok := obj.(client.Object); ok {
				return typed
			}
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

// CacheConfig is cfg for the cache of children: in JSON, as the engine
// reads children. Protobuf drops the apiVersion and kind of the objects a
// child holds (a StatefulSet's volumeClaimTemplates), which the typed
// cache would then lack.
func CacheConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	return cfg
}

// cachedList is an empty list of gvk in the form the cache of children
// holds it (CachedObject's): reading it costs no conversion.
func cachedList(scheme *runtime.Scheme, gvk schema.GroupVersionKind) client.ObjectList {
	listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
	if _, untyped := CachedObject(scheme, gvk).(*unstructured.Unstructured); !untyped {
		if obj, err := scheme.New(listGVK); err == nil {
			if list, ok := obj.(client.ObjectList); ok {
				return list
			}
		}
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(listGVK)
	return list
}

// TypedReads serves the unstructured reads of kinds scheme knows from
// reader's typed informers, converted; every other read goes to reader as
// it is.
func TypedReads(reader client.Reader, scheme *runtime.Scheme) client.Reader {
	return typedReads{Reader: reader, scheme: scheme}
}

type typedReads struct {
	client.Reader
	scheme *runtime.Scheme
}

func (r typedReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	gvk := u.GroupVersionKind()
	cached := CachedObject(r.scheme, gvk)
	if _, untyped := cached.(*unstructured.Unstructured); untyped {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	// Not a copy of the cache's object: the conversion builds the copy,
	// and reads the cached one only.
	if err := r.Reader.Get(ctx, key, cached, append(opts[:len(opts):len(opts)], client.UnsafeDisableDeepCopy)...); err != nil {
		return err
	}
	return toUnstructured(cached, gvk, u)
}

func (r typedReads) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	u, ok := list.(*unstructured.UnstructuredList)
	if !ok {
		return r.Reader.List(ctx, list, opts...)
	}
	listGVK := u.GroupVersionKind()
	if !strings.HasSuffix(listGVK.Kind, "List") || !r.scheme.Recognizes(listGVK) {
		return r.Reader.List(ctx, list, opts...)
	}
	newList, err := r.scheme.New(listGVK)
	if err != nil {
		return r.Reader.List(ctx, list, opts...)
	}
	typed, ok := newList.(client.ObjectList)
	if !ok {
		return r.Reader.List(ctx, list, opts...)
	}
	if err := r.Reader.List(ctx, typed, append(opts[:len(opts):len(opts)], client.UnsafeDisableDeepCopy)...); err != nil {
		return err
	}
	items, err := meta.ExtractList(typed)
	if err != nil {
		return err
	}
	itemGVK := listGVK.GroupVersion().WithKind(strings.TrimSuffix(listGVK.Kind, "List"))
	u.Items = make([]unstructured.Unstructured, len(items))
	for i, item := range items {
		if err := toUnstructured(item, itemGVK, &u.Items[i]); err != nil {
			return err
		}
	}
	u.SetResourceVersion(typed.GetResourceVersion())
	return nil
}

// toUnstructured fills out with obj's fields, as the API server would have
// served them.
func toUnstructured(obj runtime.Object, gvk schema.GroupVersionKind, out *unstructured.Unstructured) error {
	fields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("convert cached %s: %w", gvk.Kind, err)
	}
	out.Object = fields
	out.SetGroupVersionKind(gvk)
	return nil
}
