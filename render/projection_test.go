package render

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cuerator/cuerator/schemas"
)

// A status selected alone is the status of the whole template filled: for
// every shipped kind, whatever was observed, and for the errors too.
func TestSelectedStatusIsTheFilledTemplates(t *testing.T) {
	lib, err := Load(schemas.FS, InProcess())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range lib.kinds {
		if kind.projection == nil {
			t.Errorf("%s: the status is not selected alone", kind.GVK.Kind)
			continue
		}
		input := map[string]any{
			"metadata": map[string]any{"name": "x", "namespace": "ns", "uid": "u", "annotations": map[string]any{"a": "b"}},
			"spec":     specOf(t, kind),
		}
		statuses := map[string]any{
			"nothing":  map[string]any{},
			"progress": map[string]any{"replicas": int64(1), "observedGeneration": int64(1)},
			"ready": map[string]any{"replicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2), "observedGeneration": int64(1),
				"conditions": []any{map[string]any{"type": "Ready", "status": "True", "message": "ok"}}, "health": "green", "availableNodes": int64(3)},
		}
		for name, st := range statuses {
			t.Run(kind.GVK.Kind+"/"+name, func(t *testing.T) {
				children := map[string]any{}
				for _, key := range []string{"deployment", "statefulset", "service", "prometheus", "elasticsearch", "certificate", "credentials"} {
					children[key] = map[string]any{"metadata": map[string]any{"name": key, "uid": "uid-" + key}, "status": st}
				}
				obs := Observed{Children: children, Pods: []ObservedPod{{Name: "p-0", Phase: "Running"}}}.normalized()
				want, wantErr := statusOf(kind.fillWith(input, "r", obs))
				got, gotErr := kind.projectStatus(input, "r", obs)
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
					t.Errorf("selected: %v, %v\nfilled: %v, %v", got, gotErr, want, wantErr)
				}
			})
		}
	}

	// An error says the same either way, and names the field.
	k := kindOf(t, `status: n: int & cr.metadata.annotations.n`)
	input := map[string]any{"metadata": map[string]any{"name": "x", "namespace": "ns", "annotations": map[string]any{"n": "not a number"}}, "spec": map[string]any{}}
	_, wantErr := statusOf(k.fillWith(input, "", Observed{}.normalized()))
	_, gotErr := k.projectStatus(input, "", Observed{}.normalized())
	if gotErr == nil || gotErr.Error() != wantErr.Error() || !strings.Contains(gotErr.Error(), "status.n") {
		t.Errorf("selected: %v\nfilled: %v", gotErr, wantErr)
	}
}

// A status only a comprehension adds is not there to select at load: the
// template is filled whole instead, and projects it all the same.
func TestStatusOnlyAComprehensionAddsIsProjected(t *testing.T) {
	k := kindOf(t, `if cr.metadata.annotations.tier != _|_ { status: tier: cr.metadata.annotations.tier }`)
	if k.projection != nil {
		t.Fatal("a status under a comprehension is selected alone")
	}
	input := map[string]any{"metadata": map[string]any{"name": "x", "namespace": "ns", "annotations": map[string]any{"tier": "gold"}}, "spec": map[string]any{}}
	got, err := k.projectStatus(input, "", Observed{}.normalized())
	if err != nil || got["tier"] != "gold" {
		t.Errorf("status %v, %v", got, err)
	}
}

// kindOf loads a one-kind module whose template has a ConfigMap child and
// the given status.
func kindOf(t *testing.T, status string) *Kind {
	t.Helper()
	module := fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"sec.test/m@v0\"\nlanguage: version: \"v0.17.0\"\n")},
		"x/api/api.cue":      {Data: []byte("package api\n#CRD: {group: \"sec.test\", version: \"v1\", kind: \"X\", plural: \"xs\", singular: \"x\", scope: \"Namespaced\"}\n#Spec: {}\n#Status: {...}\n")},
		"x/x.cue": {Data: []byte(`package x
childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: {}}
observed: children: [string]: _
objects: config: {apiVersion: "v1", kind: "ConfigMap", metadata: name: cr.metadata.name}
` + status + "\n")},
	}
	lib, err := Load(module, InProcess())
	if err != nil {
		t.Fatal(err)
	}
	return lib.kinds[0]
}

// specOf is the spec of the kind's sample CR.
func specOf(t *testing.T, kind *Kind) map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "examples", strings.ToLower(kind.GVK.Kind)+"-sample.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	crs, err := ReadManifests(f)
	if err != nil || len(crs) != 1 {
		t.Fatalf("%d objects, %v", len(crs), err)
	}
	input, err := inputOf(crs[0])
	if err != nil {
		t.Fatal(err)
	}
	return input["spec"].(map[string]any)
}
