package apply

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func deployment(replicas int64, extra map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "web", "namespace": "ns", "labels": map[string]any{"app": "web"}},
		"spec": map[string]any{
			"replicas": replicas,
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "app", "image": "nginx:1"},
			}}},
		},
	}}
	for k, v := range extra {
		obj.Object[k] = v
	}
	return obj
}

func TestManagedDigestSeesOnlyTheFieldsTheTemplateSets(t *testing.T) {
	desired := deployment(3, nil)
	live := deployment(3, map[string]any{"status": map[string]any{"readyReplicas": int64(3)}})
	_ = unstructured.SetNestedField(live.Object, "12345", "metadata", "resourceVersion")
	_ = unstructured.SetNestedField(live.Object, "other", "metadata", "labels", "added-by-someone")

	base, err := managedDigest(desired, deployment(3, nil))
	if err != nil {
		t.Fatal(err)
	}
	same, err := managedDigest(desired, live)
	if err != nil {
		t.Fatal(err)
	}
	if base != same {
		t.Error("status, resourceVersion or a foreign label changed the digest")
	}

	scaled := deployment(7, nil)
	drifted, err := managedDigest(desired, scaled)
	if err != nil {
		t.Fatal(err)
	}
	if drifted == base {
		t.Error("a changed spec.replicas did not change the digest")
	}
	fields, _, err := describeDrift(desired, scaled)
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 1 || fields[0] != ".spec.replicas" {
		t.Errorf("drifted fields = %v, want [.spec.replicas]", fields)
	}
}
