package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// -o json prints what -o yaml prints, as kubectl does: one object as it is,
// several in a v1 List.
func TestOutputJSON(t *testing.T) {
	var list struct {
		APIVersion, Kind string
		Items            []struct{ Kind string }
	}
	r := runCLI(t, "rbac", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("rbac -o json: %v\n%s", err, r.stdout)
	}
	if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "ClusterRole" || list.Items[1].Kind != "Role" {
		t.Errorf("rbac -o json: %+v, want a v1 List of the ClusterRole and the Role", list)
	}

	r = runCLI(t, "render", "-f", "../../examples/memcached-sample.yaml", "-n", "ns", "-o", "json")
	var obj struct {
		Kind     string
		Metadata struct{ Namespace string }
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil || obj.Kind != "Deployment" || obj.Metadata.Namespace != "ns" {
		t.Errorf("render -o json of one child: %+v (%v), want the Deployment in ns", obj, err)
	}

	var v versionInfo
	if r := runCLI(t, "version", "-o", "json"); r.err != nil || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Version == "" || v.GoVersion == "" {
		t.Errorf("version -o json: %q (%v)", r.stdout, r.err)
	}
}

func TestOutputRefusesOtherFormats(t *testing.T) {
	for _, args := range [][]string{{"crds", "-o", "wide"}, {"version", "-o", "name"}} {
		r := runCLI(t, args...)
		if r.err == nil || !strings.Contains(r.err.Error(), "--output") {
			t.Errorf("%v: error %v, want one naming --output", args, r.err)
		}
	}
}
