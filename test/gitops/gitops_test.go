package gitops

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cuerator/cuerator/generate/argocd"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

const (
	argoCDPatch       = "../../deploy/argocd/argocd-cm-patch.yaml"
	fluxKustomization = "../../deploy/flux/cuerator-crs.yaml"
)

func library(t *testing.T) *render.Library {
	t.Helper()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// deploy/argocd is what users install; it must be what the templates
// generate now.
func TestArgoCDPatchIsCurrent(t *testing.T) {
	want, err := argocd.HealthPatch(library(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(argoCDPatch)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale: run make argocd-health", argoCDPatch)
	}
}

func TestFluxExampleChecksEveryKind(t *testing.T) {
	k, err := ReadFluxKustomization(fluxKustomization)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Spec.Wait {
		t.Error("spec.wait is not true: Flux would not wait for the CRs")
	}
	exprs := map[string]bool{}
	for _, e := range k.Spec.HealthCheckExprs {
		exprs[HealthCheckGVK(e).String()] = true
	}
	for _, kind := range library(t).Kinds() {
		if !exprs[kind.GVK.String()] {
			t.Errorf("no healthCheckExprs entry for %s", kind.GVK)
		}
	}
}

// What Argo CD, kstatus (Flux's wait) and Flux's CEL health checks make of
// the status the operator writes, at each stage of a CR's life.
func TestHealthOfCRs(t *testing.T) {
	scripts, err := ArgoCDHealthScripts(argoCDPatch)
	if err != nil {
		t.Fatal(err)
	}
	flux, err := ReadFluxKustomization(fluxKustomization)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fixture string
		argoCD  ArgoCDHealth
		kstatus status.Status
		// flux is Unknown when an expression cannot be evaluated yet.
		flux status.Status
	}{
		{"ready.yaml", ArgoCDHealth{"Healthy", "1 child applied and healthy"}, status.CurrentStatus, status.CurrentStatus},
		{"reconciling.yaml", ArgoCDHealth{"Progressing", "Deployment/prod/web is InProgress: Available: 0/3"}, status.InProgressStatus, status.InProgressStatus},
		{"stalled.yaml", ArgoCDHealth{"Degraded", "Service/prod/db exists and is owned by field managers kubectl-create (annotate it cuerator.dev/adopt=true to let this CR adopt it)"}, status.FailedStatus, status.FailedStatus},
		{"old-generation.yaml", ArgoCDHealth{"Progressing", "waiting for the operator to observe generation 3"}, status.InProgressStatus, status.InProgressStatus},
		// kstatus finds nothing to wait for in a CR without status and calls
		// it Current; hence the healthCheckExprs of deploy/flux, which leave
		// it Unknown (and Flux waiting) until the operator writes a status.
		{"no-status.yaml", ArgoCDHealth{"Progressing", "waiting for the operator"}, status.CurrentStatus, status.UnknownStatus},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			cr := readCR(t, filepath.Join("testdata", tc.fixture))
			script, ok := scripts[argocd.HealthKey(cr.GroupVersionKind())]
			if !ok {
				t.Fatalf("%s has no health check for %s", argoCDPatch, cr.GroupVersionKind())
			}
			got, err := RunArgoCDHealth(script, cr.Object)
			if err != nil {
				t.Fatalf("Argo CD health script: %v", err)
			}
			if got != tc.argoCD {
				t.Errorf("Argo CD health %+v, want %+v", got, tc.argoCD)
			}

			res, err := status.Compute(cr)
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			if res.Status != tc.kstatus {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tc.kstatus)
			}

			exprs := fluxExprs(t, flux, cr)
			st, err := FluxStatus(context.Background(), exprs, cr)
			if st != tc.flux {
				t.Errorf("Flux CEL health %s (error: %v), want %s", st, err, tc.flux)
			}
		})
	}
}

// readCR reads a fixture with numbers decoded as the API server decodes
// them (int64), as kstatus and Argo CD get them.
func readCR(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: want one object: %d, %v", path, len(objs), err)
	}
	return objs[0]
}

func fluxExprs(t *testing.T, k *FluxKustomization, cr *unstructured.Unstructured) kustomize.CustomHealthCheck {
	t.Helper()
	for _, e := range k.Spec.HealthCheckExprs {
		if HealthCheckGVK(e) == cr.GroupVersionKind() {
			return e
		}
	}
	t.Fatalf("%s has no healthCheckExprs for %s", fluxKustomization, cr.GroupVersionKind())
	return kustomize.CustomHealthCheck{}
}
