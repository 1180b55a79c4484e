package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/render"
)

// `cuerator render` needs no cluster and prints what the controller applies:
// every field it prints is on the live child with the same value. Only the
// ownerReference (it needs the CR's UID; kept children have none) and
// generated secrets differ.
func TestOfflineRenderMatchesWhatTheControllerApplies(t *testing.T) {
	cuerator := buildCuerator(t)
	ns := namespace(t, "render-vs-applied")
	direct, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, example := range []string{"memcached-sample.yaml", "webapp-sample.yaml", "database-sample.yaml"} {
		t.Run(example, func(t *testing.T) {
			path := "../../examples/" + example
			kubectl(t, "apply", "-n", ns, "-f", path)

			cmd := exec.Command(cuerator, "render", "-f", path, "-n", ns)
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("cuerator render: %v: %s", err, stderr.String())
			}
			rendered, err := render.ReadManifests(&out)
			if err != nil || len(rendered) == 0 {
				t.Fatalf("render output: %d objects, %v", len(rendered), err)
			}
			for _, want := range rendered {
				live := &unstructured.Unstructured{}
				live.SetGroupVersionKind(want.GroupVersionKind())
				eventually(t, 60*time.Second, "child "+want.GetKind()+"/"+want.GetName()+" applied", func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					return direct.Get(ctx, client.ObjectKeyFromObject(want), live)
				})
				if want.GetAnnotations()[child.AnnotationApply] == "create-only" {
					unstructured.RemoveNestedField(want.Object, "stringData")
					unstructured.RemoveNestedField(want.Object, "data")
				}
				if diff := notIn(want.Object, live.Object, ""); diff != "" {
					t.Errorf("%s/%s: rendered %s", want.GetKind(), want.GetName(), diff)
				}
				// What the garbage collector deletes with its CR names it as
				// owner; what is kept (Retain, Orphan, claims) does not.
				if child.PolicyOf(want, want.GroupVersionKind().GroupKind()) == child.PruneDelete && len(live.GetOwnerReferences()) == 0 {
					t.Errorf("%s/%s: the applied child has no ownerReference", want.GetKind(), want.GetName())
				}
			}
		})
	}
}

// notIn describes the first field of want that live lacks or holds with
// another value; "" when want is a subset of live. Lists must have the same
// length, their items compared the same way.
func notIn(want, live any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s is %v live, not an object", path, live)
		}
		for k, v := range w {
			if diff := notIn(v, l[k], path+"."+k); diff != "" {
				return diff
			}
		}
		return ""
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(w) {
			return fmt.Sprintf("%s = %v, live %v", path, want, live)
		}
		for i := range w {
			if diff := notIn(w[i], l[i], fmt.Sprintf("%s[%d]", path, i)); diff != "" {
				return diff
			}
		}
		return ""
	default:
		if !reflect.DeepEqual(want, live) {
			return fmt.Sprintf("%s = %v, live %v", path, want, live)
		}
		return ""
	}
}
