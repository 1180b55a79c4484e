package render_test

import (
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/render"
)

// A kind with a Secret, a Deployment that waits for it and reads its live
// name, and a CronJob whose readiness the template judges.
const graphTemplate = `package x

childKinds: [{apiVersion: "v1", kind: "Secret"}, {apiVersion: "apps/v1", kind: "Deployment"}, {apiVersion: "batch/v1", kind: "CronJob"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: {}}
observed: children: [string]: _
objects: {
	secret: {apiVersion: "v1", kind: "Secret", metadata: name: cr.metadata.name}
	deploy: {
		apiVersion: "apps/v1"
		kind:       "Deployment"
		metadata: {name: cr.metadata.name, annotations: secret: observed.children.secret.metadata.uid}
	}
	job: {apiVersion: "batch/v1", kind: "CronJob", metadata: name: cr.metadata.name}
}
graph: {
	deploy: {dependsOn: ["secret"], leave: ["spec.replicas"]}
	job: {
		ready:  *(observed.children.job.status.lastSuccessfulTime >= observed.children.job.status.lastScheduleTime) | false
		reason: "its last Job failed"
	}
}
`

func graphModule(t *testing.T, template string) *render.Kind {
	t.Helper()
	dir := moduleWith(t, plainModule, template)
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	return lib.Kinds()[0]
}

func graphCR() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sec.test/v1", "kind": "X",
		"metadata": map[string]any{"name": "x", "namespace": "ns", "uid": "u"},
		"spec":     map[string]any{},
	}}
}

func TestGraphWaitsForWhatAChildReads(t *testing.T) {
	k := graphModule(t, graphTemplate)
	out, err := k.Render(graphCR())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(out.Waiting, ",") != "deploy" || out.Object("deploy") != nil || out.Object("secret") == nil {
		t.Fatalf("waiting %v, objects %v", out.Waiting, out.Keys)
	}
	if n := out.Graph["deploy"]; strings.Join(n.DependsOn, ",") != "secret" || strings.Join(n.Leave, ",") != "spec.replicas" {
		t.Errorf("graph.deploy = %+v", n)
	}

	// The Secret observed: the Deployment renders, with what it read.
	err = out.Observe(render.Observed{Children: map[string]any{
		"secret": map[string]any{"metadata": map[string]any{"uid": "secret-uid"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Object("deploy")
	if len(out.Waiting) != 0 || d == nil || d.GetAnnotations()["secret"] != "secret-uid" {
		t.Fatalf("after Observe: waiting %v, deploy %v", out.Waiting, d)
	}
}

func TestGraphJudgesReadiness(t *testing.T) {
	k := graphModule(t, graphTemplate)
	out, err := k.Render(graphCR())
	if err != nil {
		t.Fatal(err)
	}
	job := func(scheduled, succeeded string) render.Observed {
		st := map[string]any{"lastScheduleTime": scheduled}
		if succeeded != "" {
			st["lastSuccessfulTime"] = succeeded
		}
		return render.Observed{Children: map[string]any{"job": map[string]any{"status": st}}}
	}
	for _, tc := range []struct {
		name string
		obs  render.Observed
		want render.Readiness
	}{
		{"last run succeeded", job("2026-12-01T02:00:00Z", "2026-12-01T02:00:05Z"), render.Readiness{Ready: true}},
		{"last run failed", job("2026-12-02T02:00:00Z", "2026-12-01T02:00:05Z"), render.Readiness{Reason: "its last Job failed"}},
		{"never succeeded", job("2026-12-02T02:00:00Z", ""), render.Readiness{Reason: "its last Job failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := out.Observe(tc.obs); err != nil {
				t.Fatal(err)
			}
			if got := out.Readiness["job"]; got != tc.want {
				t.Errorf("readiness %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestGraphMistakesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, graph, want string
	}{
		{"unknown child", `graph: nope: dependsOn: ["secret"]`, "graph.nope: no such child"},
		{"unknown dependency", `graph: deploy: dependsOn: ["nope"]`, `"nope" is not another child`},
		{"cycle", "graph: {deploy: dependsOn: [\"job\"], job: dependsOn: [\"deploy\"]}", "goes round"},
		{"a name left to others", `graph: deploy: leave: ["metadata.name"]`, "cannot be left to others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			template := strings.SplitN(graphTemplate, "graph: {", 2)[0] + tc.graph + "\n"
			template = strings.Replace(template, "annotations: secret: observed.children.secret.metadata.uid", "annotations: secret: \"s\"", 1)
			k := graphModule(t, template)
			_, err := k.Render(graphCR())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A child that reads what it does not depend on is the template's fault,
// not a wait.
func TestIncompleteChildWithoutDependsOnIsATemplateError(t *testing.T) {
	template := strings.Replace(graphTemplate, `deploy: {dependsOn: ["secret"], leave: ["spec.replicas"]}`, `deploy: {leave: ["spec.replicas"]}`, 1)
	_, err := graphModule(t, template).Render(graphCR())
	if err == nil || !strings.Contains(err.Error(), "objects.deploy") {
		t.Errorf("error %v, want a template error naming objects.deploy", err)
	}
}

// A CR deleted in order deletes first what nothing depends on.
func TestDeletionStagesReverseTheOrder(t *testing.T) {
	out, err := graphModule(t, graphTemplate).Render(graphCR())
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Observe(render.Observed{Children: map[string]any{"secret": map[string]any{"metadata": map[string]any{"uid": "u"}}}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, stage := range out.DeletionStages() {
		var names []string
		for _, obj := range stage {
			names = append(names, obj.GetKind())
		}
		got = append(got, strings.Join(names, "+"))
	}
	// The Deployment depends on the Secret: it goes first; the CronJob
	// depends on nothing and goes with the Secret.
	if strings.Join(got, " then ") != "Deployment then Secret+CronJob" {
		t.Errorf("stages %v", got)
	}
}
