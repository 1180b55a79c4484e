package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/corpus"
)

// invalidCRMinimum is the bar: at least this many invalid CRs,
// hand-written and generated, each refused naming its field.
const invalidCRMinimum = 200

// invalidCR is one invalid case as created in the cluster.
type invalidCR struct {
	corpus.Case
	// name is the CR's name in the test namespace.
	name string
	// refusal is the API server's error; empty when it admitted the CR.
	refusal error
}

// TestInvalidCRsRejectedOrStalled creates every invalid CR of test/corpus,
// the files and the generated cases, as a user's client would (strict field
// validation, kubectl's default). The API server must refuse each naming the
// field it breaks, or, for rules the CRD cannot express, admit it and the
// operator must mark it Stalled=True and Ready=False, naming the field. No
// child may be created for any, and no reconcile may panic.
func TestInvalidCRsRejectedOrStalled(t *testing.T) {
	start := time.Now()
	lib, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := corpus.Invalid(lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < invalidCRMinimum {
		t.Fatalf("%d invalid cases, want at least %d", len(cases), invalidCRMinimum)
	}
	ns := namespace(t, "invalid-crs")
	c := invalidCRClient(t)
	panicsBefore := reconcilePanics(t)

	crs := createInvalidCRs(t, c, ns, cases)
	var admitted []*invalidCR
	for _, cr := range crs {
		switch {
		case cr.refusal == nil:
			admitted = append(admitted, cr)
		case !apierrors.IsInvalid(cr.refusal) && !apierrors.IsBadRequest(cr.refusal):
			t.Errorf("%s: the create failed for another reason than the CR: %v", cr.Name(), cr.refusal)
		case !corpus.Names(cr.refusal.Error(), cr.Field):
			t.Errorf("%s: the API server refuses it without naming %s: %v", cr.Name(), cr.Field, cr.refusal)
		}
	}
	wantStalledNaming(t, c, ns, lib, admitted)
	wantNoChildren(t, c, ns, lib)
	if panics := reconcilePanics(t) - panicsBefore; panics != 0 {
		t.Errorf("%v reconciles panicked", panics)
	}
	logInvalidCRTotals(t, crs, time.Since(start))
}

// invalidCRClient is a client without the default rate limit, so that
// hundreds of creates take a second, not a minute.
func invalidCRClient(t *testing.T) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(testCluster.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createInvalidCRs creates the cases concurrently in ns. A case keeps its
// name only when the name is what it breaks; the others get short unique
// names that every kind accepts.
func createInvalidCRs(t *testing.T, c client.Client, ns string, cases []corpus.Case) []*invalidCR {
	t.Helper()
	crs := make([]*invalidCR, len(cases))
	for i, tc := range cases {
		crs[i] = &invalidCR{Case: tc, name: tc.CR.GetName()}
		if tc.Field != "metadata.name" {
			crs[i].name = fmt.Sprintf("%s-%d", tc.Kind, i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	work := make(chan *invalidCR)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for cr := range work {
				obj := cr.CR.DeepCopy()
				obj.SetNamespace(ns)
				obj.SetName(cr.name)
				cr.refusal = c.Create(ctx, obj, client.FieldValidation("Strict"))
			}
		})
	}
	for _, cr := range crs {
		work <- cr
	}
	close(work)
	wg.Wait()
	return crs
}

// wantStalledNaming waits until the operator has written a status for each
// admitted CR's generation, listing each kind at a time, and wants it
// Stalled=True with reason InvalidSpec and Ready=False, naming the field.
func wantStalledNaming(t *testing.T, c client.Client, ns string, lib *render.Library, admitted []*invalidCR) {
	t.Helper()
	live := map[string]*unstructured.Unstructured{}
	eventually(t, time.Minute, "every admitted invalid CR reconciled", func() error {
		for _, kind := range lib.Kinds() {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(kind.GVK.GroupVersion().WithKind(kind.GVK.Kind + "List"))
			if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
				return err
			}
			for i := range list.Items {
				live[strings.ToLower(kind.GVK.Kind)+"/"+list.Items[i].GetName()] = &list.Items[i]
			}
		}
		var waiting []string
		for _, cr := range admitted {
			obj := live[cr.Kind+"/"+cr.name]
			if obj == nil {
				return fmt.Errorf("%s (%s) was admitted but is gone", cr.Name(), cr.name)
			}
			if observed, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); observed != obj.GetGeneration() {
				waiting = append(waiting, cr.Name())
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("%d without a status for their generation, such as %s", len(waiting), waiting[0])
		}
		return nil
	})
	for _, cr := range admitted {
		obj := live[cr.Kind+"/"+cr.name]
		stalled, ready := invalidCRCondition(obj, "Stalled"), invalidCRCondition(obj, "Ready")
		if stalled["status"] != "True" || stalled["reason"] != "InvalidSpec" || ready["status"] != "False" {
			t.Errorf("%s: admitted, and then Stalled %v, Ready %v; want Stalled=True (InvalidSpec), Ready=False", cr.Name(), stalled, ready)
			continue
		}
		if msg, _ := stalled["message"].(string); !corpus.Names(msg, cr.Field) {
			t.Errorf("%s: Stalled without naming %s: %s", cr.Name(), cr.Field, msg)
		}
	}
}

func invalidCRCondition(obj *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == typ {
			return m
		}
	}
	return nil
}

// wantNoChildren wants no object of any kind a template may produce in ns:
// every CR there is invalid.
func wantNoChildren(t *testing.T, c client.Client, ns string, lib *render.Library) {
	t.Helper()
	seen := map[schema.GroupVersionKind]bool{}
	for _, kind := range lib.Kinds() {
		for _, gvk := range kind.ChildKinds {
			if seen[gvk] {
				continue
			}
			seen[gvk] = true
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			err := c.List(context.Background(), list, client.InNamespace(ns))
			if meta.IsNoMatchError(err) {
				// The cluster does not serve the kind (ServiceMonitor).
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, child := range list.Items {
				t.Errorf("%s %s was created for an invalid CR", gvk.Kind, child.GetName())
			}
		}
	}
}

// reconcilePanics reads controller-runtime's count of reconciles that
// panicked, over every controller of the in-process operator.
func reconcilePanics(t *testing.T) float64 {
	return counterTotal(t, "controller_runtime_reconcile_panics_total", "")
}

// invalidCRTally counts cases and where they were refused.
type invalidCRTally struct{ cases, rejected, stalled int }

func (tl *invalidCRTally) count(cr *invalidCR) {
	tl.cases++
	if cr.refusal != nil {
		tl.rejected++
	} else {
		tl.stalled++
	}
}

func invalidCRTallyOf(group map[string]*invalidCRTally, key string) *invalidCRTally {
	if group[key] == nil {
		group[key] = &invalidCRTally{}
	}
	return group[key]
}

func logInvalidCRTotals(t *testing.T, crs []*invalidCR, took time.Duration) {
	t.Helper()
	var all invalidCRTally
	byKind, byViolation := map[string]*invalidCRTally{}, map[string]*invalidCRTally{}
	for _, cr := range crs {
		all.count(cr)
		invalidCRTallyOf(byKind, cr.Kind).count(cr)
		invalidCRTallyOf(byViolation, string(cr.Violation)).count(cr)
	}
	t.Logf("%d invalid CRs in %s: %d rejected at admission, %d admitted and Stalled", all.cases, took.Round(time.Millisecond), all.rejected, all.stalled)
	for _, group := range []map[string]*invalidCRTally{byKind, byViolation} {
		keys := make([]string, 0, len(group))
		for k := range group {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("  %-18s %3d cases: %3d rejected at admission, %3d Stalled", k, group[k].cases, group[k].rejected, group[k].stalled)
		}
	}
}
