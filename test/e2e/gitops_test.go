package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cuerator/cuerator/generate/argocd"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/gitops"
)

const (
	argoCDPatch       = "../../deploy/argocd/argocd-cm-patch.yaml"
	fluxKustomization = "../../deploy/flux/cuerator-crs.yaml"
)

// A GitOps tool applies the same manifests over and over. The second
// server-side apply of a CR must write nothing: its defaults live in the
// CRD, and the operator never writes spec.
func TestSecondServerSideApplyWritesNothing(t *testing.T) {
	ns := namespace(t, "gitops-reapply")
	files := map[string]string{
		"memcached/memcached-sample": sample,
		"webapp/my-webapp":           webAppSample,
		"database/my-db":             databaseSample,
	}
	for _, file := range files {
		kubectl(t, "apply", "--server-side", "-n", ns, "-f", file)
	}
	for cr := range files {
		waitReconciled(t, ns, cr)
	}

	for cr, file := range files {
		before := jsonpath(t, ns, cr, "{.metadata.generation} {.spec}")
		// The operator may still write status (pods coming up): a try
		// counts only when nothing else wrote between the reads around it.
		eventually(t, 60*time.Second, cr+": an apply that leaves resourceVersion as it was", func() error {
			version := jsonpath(t, ns, cr, "{.metadata.resourceVersion}")
			out := kubectl(t, "apply", "--server-side", "-n", ns, "-f", file)
			if !strings.Contains(out, "serverside-applied") {
				t.Fatalf("kubectl apply --server-side printed %q", out)
			}
			if after := jsonpath(t, ns, cr, "{.metadata.generation} {.spec}"); after != before {
				t.Fatalf("the second apply changed generation or spec: %q -> %q", before, after)
			}
			if now := jsonpath(t, ns, cr, "{.metadata.resourceVersion}"); now != version {
				return fmt.Errorf("resourceVersion %s -> %s", version, now)
			}
			return nil
		})
	}
}

// The health checks of deploy/argocd and deploy/flux, and kstatus, on CRs
// as the operator reports them: Ready ones are Healthy and Current, a
// Stalled one Degraded and Failed.
func TestGitOpsHealthOfLiveCRs(t *testing.T) {
	scripts, err := gitops.ArgoCDHealthScripts(argoCDPatch)
	if err != nil {
		t.Fatal(err)
	}
	flux, err := gitops.ReadFluxKustomization(fluxKustomization)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "gitops-health")
	for _, f := range []string{sample, webAppSample, databaseSample} {
		kubectl(t, "apply", "-n", ns, "-f", f)
	}
	for _, cr := range []string{"memcached/memcached-sample", "webapp/my-webapp", "database/my-db"} {
		live := waitCondition(t, ns, cr, "Ready")
		if h := argoCDHealth(t, scripts, live); h.Status != "Healthy" {
			t.Errorf("%s: Argo CD health %+v, want Healthy", cr, h)
		}
		if res, err := status.Compute(live); err != nil || res.Status != status.CurrentStatus {
			t.Errorf("%s: kstatus %v (%v), want Current", cr, res, err)
		}
		var exprs *kustomize.CustomHealthCheck
		for _, e := range flux.Spec.HealthCheckExprs {
			if gitops.HealthCheckGVK(e) == live.GroupVersionKind() {
				exprs = &e
			}
		}
		if exprs == nil {
			t.Fatalf("%s has no healthCheckExprs for %s", fluxKustomization, live.GroupVersionKind())
		}
		if st, err := gitops.FluxStatus(context.Background(), *exprs, live); st != status.CurrentStatus {
			t.Errorf("%s: Flux CEL health %s (%v), want Current", cr, st, err)
		}
	}

	// The Widget kind's broken mode is a template error: Stalled.
	startWidgets(t)
	applyWidget(t, ns, "w", "  mode: broken\n")
	live := waitCondition(t, ns, "widget/w", "Stalled")
	// Widget is a test kind, not in deploy/argocd: it gets the same script.
	h, err := gitops.RunArgoCDHealth(argocd.HealthLua, live.Object)
	if err != nil || h.Status != "Degraded" || !strings.Contains(h.Message, "spec.replicas") {
		t.Errorf("Stalled widget: Argo CD health %+v (%v), want Degraded naming spec.replicas", h, err)
	}
	if res, err := status.Compute(live); err != nil || res.Status != status.FailedStatus {
		t.Errorf("Stalled widget: kstatus %v (%v), want Failed", res, err)
	}
}

// waitCondition returns the CR as read when condition typ is True.
func waitCondition(t *testing.T, ns, cr, typ string) *unstructured.Unstructured {
	t.Helper()
	var live *unstructured.Unstructured
	eventually(t, 120*time.Second, cr+" "+typ, func() error {
		objs, err := render.ReadManifests(strings.NewReader(kubectl(t, "get", cr, "-n", ns, "-o", "json")))
		if err != nil || len(objs) != 1 {
			return fmt.Errorf("read %s: %v", cr, err)
		}
		conds, _, _ := unstructured.NestedSlice(objs[0].Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == typ && m["status"] == "True" {
				live = objs[0]
				return nil
			}
		}
		return fmt.Errorf("%s is not %s", cr, typ)
	})
	return live
}

func argoCDHealth(t *testing.T, scripts map[string]string, live *unstructured.Unstructured) gitops.ArgoCDHealth {
	t.Helper()
	script, ok := scripts[argocd.HealthKey(live.GroupVersionKind())]
	if !ok {
		t.Fatalf("%s has no health check for %s", argoCDPatch, live.GroupVersionKind())
	}
	h, err := gitops.RunArgoCDHealth(script, live.Object)
	if err != nil {
		t.Fatalf("Argo CD health script on %s: %v", live.GetName(), err)
	}
	return h
}
