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

func secret(data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "s", "namespace": "ns"},
		"type": "Opaque", "data": data,
	}}
}

// As kubectl diff: no value of a Secret shows, and a changed one shows as
// changed.
func TestUnifiedDiffMasksSecretValues(t *testing.T) {
	live := secret(map[string]any{"password": "b2xkLXBhc3N3b3Jk", "user": "YWRtaW4=", "gone": "Z29uZQ=="})
	after := secret(map[string]any{"password": "bmV3LXBhc3N3b3Jk", "user": "YWRtaW4=", "added": "YWRkZWQ="})
	diff, err := unifiedDiff("Secret/ns/s", live, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-  password: '*** (before)'\n",
		"+  password: '*** (after)'\n",
		"   user: '***'\n",
		"-  gone: '***'\n",
		"+  added: '***'\n",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	for _, value := range []string{"b2xkLXBhc3N3b3Jk", "bmV3LXBhc3N3b3Jk", "YWRtaW4=", "Z29uZQ==", "YWRkZWQ="} {
		if strings.Contains(diff, value) {
			t.Errorf("diff shows the secret value %s:\n%s", value, diff)
		}
	}
	if live.Object["data"].(map[string]any)["password"] != "b2xkLXBhc3N3b3Jk" {
		t.Error("masking changed the live object it was given")
	}

	// A Secret whose values are the same has no diff.
	same, err := unifiedDiff("Secret/ns/s", secret(map[string]any{"k": "dg=="}), secret(map[string]any{"k": "dg=="}))
	if err != nil || same != "" {
		t.Errorf("diff of equal Secrets: %q, %v", same, err)
	}
}
