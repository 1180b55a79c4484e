package e2e

import (
	"context"
	"fmt"
	"os"
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

	"github.com/cuerator/cuerator/child"
	"github.com/cuerator/cuerator/crdgen"
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

// TestInvalidCRsRefusedAtAdmission creates every invalid CR of test/corpus,
// the files and the generated cases, as a user's client would (strict field
// validation, kubectl's default). The API server must refuse each, naming
// the field it breaks: the generated CRDs state every rule of the kinds'
// CUE, the ones on metadata.name and between fields included (cuerator crds
// warns of nothing for them). No child may be created for any, and no
// reconcile may panic.
func TestInvalidCRsRefusedAtAdmission(t *testing.T) {
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
	for _, cr := range crs {
		switch {
		case cr.refusal == nil:
			t.Errorf("%s: the API server admits it (want a refusal naming %s)", cr.Name(), cr.Field)
		case !apierrors.IsInvalid(cr.refusal) && !apierrors.IsBadRequest(cr.refusal):
			t.Errorf("%s: the create failed for another reason than the CR: %v", cr.Name(), cr.refusal)
		case !corpus.Names(cr.refusal.Error(), cr.Field):
			t.Errorf("%s: the API server refuses it without naming %s: %v", cr.Name(), cr.Field, cr.refusal)
		}
	}
	wantNoChildren(t, c, ns, lib)
	if panics := reconcilePanics(t) - panicsBefore; panics != 0 {
		t.Errorf("%v reconciles panicked", panics)
	}
	logInvalidCRTotals(t, crs, time.Since(start))
}

// A constraint with no CEL form (the Widget's spec.address is
// net.IPv4()) is admitted, as cuerator crds warns; the operator's render
// refuses it: Stalled=True, reason InvalidSpec, naming the field, and no
// child.
func TestConstraintWithoutCELFormStalls(t *testing.T) {
	startWidgets(t)
	lib, err := render.Load(os.DirFS(widgetTemplates))
	if err != nil {
		t.Fatal(err)
	}
	_, warnings, err := crdgen.GenerateWithWarnings(lib.Kinds()[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].Path != "spec.address" {
		t.Fatalf("warnings %v, want one about spec.address", warnings)
	}
	ns := namespace(t, "widget-no-cel")
	applyWidget(t, ns, "w", "  address: 10.0.0.300\n")
	eventually(t, 60*time.Second, "Stalled", func() error {
		if got := condition(t, ns, "widget/w", "Stalled"); !strings.HasPrefix(got, "True/InvalidSpec: ") || !corpus.Names(got, "spec.address") {
			return fmt.Errorf("Stalled is %q", got)
		}
		return nil
	})
	if got := condition(t, ns, "widget/w", "Ready"); !strings.HasPrefix(got, "False/") {
		t.Errorf("Ready is %q", got)
	}
	for _, o := range [][2]string{{"deployment", "w"}, {"configmap", "w-config"}} {
		if exists(t, ns, o[0], o[1]) {
			t.Errorf("%s/%s was created for an invalid Widget", o[0], o[1])
		}
	}
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
			// cuerator's children only: a namespace has objects of its own
			// of some child kinds (the default ServiceAccount).
			err := c.List(context.Background(), list, client.InNamespace(ns), client.HasLabels{child.LabelOwnerKind})
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

// invalidCRTally counts cases and whether they were refused.
type invalidCRTally struct{ cases, rejected, admitted int }

func (tl *invalidCRTally) count(cr *invalidCR) {
	tl.cases++
	if cr.refusal != nil {
		tl.rejected++
	} else {
		tl.admitted++
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
	t.Logf("%d invalid CRs in %s: %d rejected at admission, %d admitted", all.cases, took.Round(time.Millisecond), all.rejected, all.admitted)
	for _, group := range []map[string]*invalidCRTally{byKind, byViolation} {
		keys := make([]string, 0, len(group))
		for k := range group {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("  %-18s %3d cases: %3d rejected at admission, %3d admitted", k, group[k].cases, group[k].rejected, group[k].admitted)
		}
	}
}
