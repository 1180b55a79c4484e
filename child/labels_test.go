package child

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

var memcached = schema.GroupVersionKind{Group: "cache.example.com", Version: "v1alpha1", Kind: "Memcached"}

// A CR name may be 253 characters; a label value 63. Children of a CR with
// a long name still carry valid labels, are told apart from those of a CR
// with the same first characters, and map back to their CR.
func TestLongCRNames(t *testing.T) {
	long := strings.Repeat("a", 60) + "-" + strings.Repeat("b", 100)
	twin := strings.Repeat("a", 60) + "-" + strings.Repeat("c", 100)
	for _, name := range []string{"short", strings.Repeat("x", 63), long, twin} {
		owner := Owner{GVK: memcached, Namespace: "ns", Name: name, UID: "u"}
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("apps/v1")
		obj.SetKind("Deployment")
		obj.SetNamespace("ns")
		obj.SetName("d")
		Stamp(obj, owner)
		for k, v := range obj.GetLabels() {
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				t.Errorf("%s: label %s=%q is invalid: %v", name[:10], k, v, msgs)
			}
		}
		if !owner.HasOwnerLabels(obj) {
			t.Errorf("%s: the stamped child does not carry its owner's labels", name[:10])
		}
		got, ok := OwnerNamed(obj, memcached, true)
		if !ok || got.Name != name {
			t.Errorf("%s: OwnerNamed = %v %v", name[:10], got, ok)
		}
		if name == long && (Owner{GVK: memcached, Namespace: "ns", Name: twin}).HasOwnerLabels(obj) {
			t.Error("the child of one long name is taken for the child of another with the same first characters")
		}
	}
	if NameLabel(long) == NameLabel(twin) {
		t.Error("two long names give one label value")
	}
}

func TestKindLabelMustFit(t *testing.T) {
	if err := KindLabelError(memcached); err != nil {
		t.Errorf("Memcached: %v", err)
	}
	long := schema.GroupVersionKind{Group: strings.Repeat("g", 50) + ".example.com", Kind: "Widget"}
	if err := KindLabelError(long); err == nil || !strings.Contains(err.Error(), "label value") {
		t.Errorf("a kind label over 63 characters: %v", err)
	}
}
