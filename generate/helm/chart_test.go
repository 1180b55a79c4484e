package helm_test

import (
	"strings"
	"testing"

	"github.com/cuerator/cuerator/generate/helm"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

const operatorManifests = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: op, namespace: op-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: op-manager}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op-manager}
subjects: [{kind: ServiceAccount, name: op, namespace: op-system}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: op-controller-manager
  namespace: op-system
  annotations: {note: "{{ not a template }}"}
spec:
  replicas: 2
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      serviceAccountName: op
      containers:
      - name: manager
        image: op
        resources: {limits: {memory: 1Gi}}
`

func chart(t *testing.T, manifests string) (map[string][]byte, error) {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.ReadManifests(strings.NewReader(manifests))
	if err != nil {
		t.Fatal(err)
	}
	return helm.Chart(lib, helm.Source{Version: "1.2.3", KubeVersion: "1.37.0", Manifests: objs, Namespace: "op-system", Name: "op"})
}

// Names, namespace and what values set become template expressions; the
// rest stays as deploy/ has it.
func TestChartTemplatesWhatAReleaseSets(t *testing.T) {
	files, err := chart(t, operatorManifests)
	if err != nil {
		t.Fatal(err)
	}
	deployment := string(files["templates/deployment_op-controller-manager.yaml"])
	for _, want := range []string{
		`  name: {{ include "cuerator.fullname" . }}-controller-manager` + "\n",
		"  namespace: {{ .Release.Namespace }}\n",
		"  replicas: {{ .Values.replicaCount }}\n",
		`      - image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"` + "\n",
		"        resources:\n          {{- toYaml .Values.resources | nindent 10 }}\n",
		"      {{- with .Values.nodeSelector }}\n      nodeSelector:\n        {{- toYaml . | nindent 8 }}\n      {{- end }}\n",
		`      serviceAccountName: {{ include "cuerator.fullname" . }}` + "\n",
		"      app.kubernetes.io/instance: {{ .Release.Name }}\n",
		// Manifest text that looks like a template prints as it is.
		`    note: '{{ "{{" }} not a template }}'` + "\n",
	} {
		if !strings.Contains(deployment, want) {
			t.Errorf("the Deployment template lacks %q:\n%s", want, deployment)
		}
	}
	binding := string(files["templates/clusterrolebinding_op-manager.yaml"])
	for _, want := range []string{
		`  name: {{ include "cuerator.fullname" . }}-manager` + "\n",
		`  name: {{ include "cuerator.fullname" . }}` + "\n",
		"  namespace: {{ .Release.Namespace }}\n",
	} {
		if !strings.Contains(binding, want) {
			t.Errorf("the ClusterRoleBinding template lacks %q:\n%s", want, binding)
		}
	}
	values := string(files["values.yaml"])
	for _, want := range []string{"replicaCount: 2\n", "resources:\n  limits:\n    memory: 1Gi\n"} {
		if !strings.Contains(values, want) {
			t.Errorf("values.yaml lacks the manifests' default %q:\n%s", want, values)
		}
	}
	crd := string(files["templates/crds/cache.example.com_memcacheds.yaml"])
	if !strings.Contains(crd, "{{- if .Values.crds.install }}\n") || !strings.Contains(crd, "helm.sh/resource-policy: keep\n") {
		t.Errorf("the Memcached CRD is not installed on crds.install and kept:\n%.400s", crd)
	}
}

func TestChartRefusesManifestsItCannotTemplate(t *testing.T) {
	for name, tc := range map[string]struct{ manifests, want string }{
		"no Deployment":     {operatorManifests[:strings.Index(operatorManifests, "---\napiVersion: apps/v1")], "hold no Deployment"},
		"another namespace": {strings.Replace(operatorManifests, "metadata: {name: op, namespace: op-system}", "metadata: {name: op, namespace: elsewhere}", 1), "in namespace elsewhere, not the operator's op-system"},
		"two Deployments":   {operatorManifests + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other, namespace: op-system}\n", "want one: the manager"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := chart(t, tc.manifests)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
