package preview

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func configMap(data map[string]any, meta map[string]any) *unstructured.Unstructured {
	m := map[string]any{"name": "c", "namespace": "ns"}
	for k, v := range meta {
		m[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data,
	}}
}

// What every write changes, and status, which an apply does not set, are
// no difference.
func TestUnifiedDiffIgnoresWhatEveryWriteChanges(t *testing.T) {
	live := configMap(map[string]any{"k": "v"}, map[string]any{
		"resourceVersion": "7", "generation": int64(1), "uid": "u1",
		"creationTimestamp": "2026-01-01T00:00:00Z",
		"managedFields":     []any{map[string]any{"manager": "cuerator"}},
	})
	live.Object["status"] = map[string]any{"phase": "old"}
	after := configMap(map[string]any{"k": "v"}, map[string]any{
		"resourceVersion": "8", "generation": int64(2), "uid": "u1",
		"managedFields": []any{map[string]any{"manager": "kubectl"}},
	})
	diff, err := unifiedDiff("ConfigMap/ns/c", live, after)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Errorf("diff of objects that differ only in bookkeeping:\n%s", diff)
	}
}

func TestUnifiedDiffShowsChangedFields(t *testing.T) {
	live := configMap(map[string]any{"greeting": "hello", "same": "x"}, nil)
	after := configMap(map[string]any{"greeting": "hi", "same": "x"}, nil)
	diff, err := unifiedDiff("ConfigMap/ns/c", live, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--- ConfigMap/ns/c (live)\n",
		"+++ ConfigMap/ns/c (after apply)\n",
		"-  greeting: hello\n",
		"+  greeting: hi\n",
		"   same: x\n",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
}
