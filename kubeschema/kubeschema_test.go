package kubeschema

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func object(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations: {a: b}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80, name: http}]
        readinessProbe: {tcpSocket: {port: http}}
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 1}}
`

// A valid Deployment, with int-or-string values and quantities of both
// kinds, has no issue.
func TestValidDeployment(t *testing.T) {
	issues, known := Check(object(t, deployment))
	if !known || len(issues) != 0 {
		t.Fatalf("known %v, issues %v", known, issues)
	}
}

// What the API server would refuse: each misspelt field, a value of the
// wrong type, and two containers of one name, each with its path.
func TestIssues(t *testing.T) {
	bad := strings.NewReplacer(
		"        image: nginx\n", "        image: nginx\n        imagePullPolicyy: Always\n",
		"  replicas: 3\n", "  replicas: three\n  revisionHistory: 2\n",
	).Replace(deployment) + "      - name: web\n        image: other\n"
	issues, known := Check(object(t, bad))
	if !known {
		t.Fatal("a Deployment is not known")
	}
	got := map[string]string{}
	for _, i := range issues {
		got[i.PathString()] = i.Message
	}
	for path, want := range map[string]string{
		"spec.template.spec.containers[0].imagePullPolicyy": "unknown field: the schema of Deployment apps/v1 has no such field",
		"spec.revisionHistory":                              "unknown field",
		"spec.replicas":                                     `is the string "three"; the schema of Deployment apps/v1 wants a number`,
		"spec.template.spec.containers[1]":                  "duplicate entry for key name=web (item 0 has it too)",
	} {
		if !strings.Contains(got[path], want) {
			t.Errorf("%s: %q, want %q", path, got[path], want)
		}
	}
	if len(issues) != 4 {
		t.Errorf("%d issues, want 4: %v", len(issues), issues)
	}
}

// A kind that a CRD defines has no built-in schema: not checked.
func TestCRDKindsAreNotKnown(t *testing.T) {
	_, known := Check(object(t, "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {anything: 1}\n"))
	if known {
		t.Error("a Certificate is said to be known")
	}
}
