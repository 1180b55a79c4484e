package apply

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/child"
)

func TestMemoryForgetsOneOwnerOnly(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "apps.example.com", Version: "v1alpha1", Kind: "WebApp"}
	shop := child.Owner{GVK: gvk, Namespace: "store", Name: "shop", UID: "uid-shop"}
	blog := child.Owner{GVK: gvk, Namespace: "store", Name: "blog", UID: "uid-blog"}
	var m memory
	m.put(keyOf(shop, "apps/Deployment/store/shop"), record{desired: "d1"})
	m.put(keyOf(shop, "/Service/store/shop"), record{desired: "d2"})
	m.put(keyOf(blog, "apps/Deployment/store/blog"), record{desired: "d3"})

	m.forget(shop.Key())
	if _, ok := m.get(keyOf(shop, "apps/Deployment/store/shop")); ok {
		t.Error("a forgotten owner's Deployment is still remembered")
	}
	if _, ok := m.get(keyOf(shop, "/Service/store/shop")); ok {
		t.Error("a forgotten owner's Service is still remembered")
	}
	if r, ok := m.get(keyOf(blog, "apps/Deployment/store/blog")); !ok || r.desired != "d3" {
		t.Errorf("another owner's record = %+v, %v; want it kept", r, ok)
	}

	// A CR created again under the same name starts afresh.
	again := shop
	again.UID = "uid-shop-2"
	m.put(keyOf(shop, "apps/Deployment/store/shop"), record{desired: "old"})
	if _, ok := m.get(keyOf(again, "apps/Deployment/store/shop")); ok {
		t.Error("a CR created again finds the records of the one deleted before it")
	}

	m.drop(keyOf(blog, "apps/Deployment/store/blog"))
	if _, ok := m.get(keyOf(blog, "apps/Deployment/store/blog")); ok {
		t.Error("a dropped record is still remembered")
	}
	if _, ok := m.records[blog.Key()]; ok {
		t.Error("an owner with no records left still holds an entry")
	}
}
