package e2e

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/cuerator/cuerator/controllers"
)

// A kind whose template has two ConfigMap children, the second held back
// while the CR is annotated hold=true, and projects the names of the pods
// it selects into status.
const probeAPI = `package api

#CRD: {group: "exits.test.cuerator.dev", version: "v1", kind: "Probe", plural: "probes", singular: "probe", scope: "Namespaced"}
#Spec: {}
#Status: {...}
`

const probeTemplate = `package probe

import "test.cuerator.dev/exits/probe/api"

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: config: {apiVersion: "v1", kind: "ConfigMap", metadata: name: cr.metadata.name}
objects: later: {apiVersion: "v1", kind: "ConfigMap", metadata: name: cr.metadata.name + "-later"}
graph: {
	later: dependsOn: ["config"]
	config: {ready: (*cr.metadata.annotations.hold | "") != "true", reason: "held by the test"}
}
observed: pods: [...{name: string}]
observe: pods: matchLabels: probe: cr.metadata.name
status: pods: [for p in observed.pods {p.name}]
`

// Every way a reconcile can end leaves a status that says how it ended,
// including the exits after the children were applied: a failure to read
// the health of a child held back (those applied come back from the apply
// as it read or wrote them, and are not read again), and a failure to list
// the pods the template observes. The faults are injected into the
// operator's client; everything else is the real API server.
func TestEveryErrorExitWritesStatus(t *testing.T) {
	lib := installKind(t, "module: \"test.cuerator.dev/exits@v0\"\nlanguage: version: \"v0.17.0\"\n", "probe", probeAPI, probeTemplate)

	var failHealth, failPods atomic.Bool
	injected := errors.New("injected by the test")
	opts := controllers.ManagerOptions{Options: quickReconciles}
	opts.NewClient = func(cfg *rest.Config, o client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(cfg, o)
		if err != nil {
			return nil, err
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				// The health read after the apply, not the graph's before it.
				if failHealth.Load() && calledFrom("apply.(*Applier).Health") && !calledFrom("controllers.(*Reconciler).gate") {
					return fmt.Errorf("read health: %w", injected)
				}
				return c.Get(ctx, key, obj, opts...)
			},
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if failPods.Load() && list.GetObjectKind().GroupVersionKind().Kind == "PodList" {
					return fmt.Errorf("list pods: %w", injected)
				}
				return c.List(ctx, list, opts...)
			},
		}), nil
	}
	op, err := startInProcess(testCluster.Config, lib, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.stop() })

	ns := namespace(t, "error-exits")
	probe := func(generation int, hold bool) {
		kubectlIn(t, fmt.Sprintf("apiVersion: exits.test.cuerator.dev/v1\nkind: Probe\nmetadata: {name: p, namespace: %s, annotations: {round: %q, hold: %q}}\nspec: {}\n", ns, fmt.Sprint(generation), fmt.Sprint(hold)), "apply", "-f", "-")
	}
	wantReady := func(want string) {
		t.Helper()
		eventually(t, 60*time.Second, "Ready "+want, func() error {
			if got := condition(t, ns, "probe/p", "Ready"); !strings.HasPrefix(got, want) {
				return fmt.Errorf("Ready is %q", got)
			}
			return nil
		})
	}

	for _, tc := range []struct {
		name   string
		fault  *atomic.Bool
		hold   bool // a child held back, whose health is read from the cache
		reason string
	}{
		{"health read fails", &failHealth, true, controllers.ReasonHealthCheckFailed},
		{"pod list fails", &failPods, false, controllers.ReasonObserveFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Store(true)
			probe(int(time.Now().UnixNano()), tc.hold)
			wantReady("False/" + tc.reason + ": ")
			if got := condition(t, ns, "probe/p", "Ready"); !strings.Contains(got, injected.Error()) {
				t.Errorf("Ready %q does not say what failed", got)
			}
			if got := condition(t, ns, "probe/p", "Reconciling"); !strings.HasPrefix(got, "True/"+tc.reason) {
				t.Errorf("Reconciling %q, want True/%s: the operator retries", got, tc.reason)
			}
			tc.fault.Store(false)
			probe(int(time.Now().UnixNano()), false)
			wantReady("True/" + controllers.ReasonSucceeded)
		})
	}
}

// calledFrom reports whether a function whose name ends with fn is on the
// calling goroutine's stack.
func calledFrom(fn string) bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, fn) {
			return true
		}
		if !more {
			return false
		}
	}
}
