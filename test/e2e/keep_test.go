package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/render"
)

// What users keep stays kept, and what is not cuerator's is never taken:
// each test here is one way of losing data or deleting the wrong thing,
// tried with the real kubectl and the real garbage collector.

// movedWidgetKind is the Widget template module with its kind moved to
// group and renamed kind: a kind name of its own keeps `kubectl get
// widget/...` of other tests unambiguous.
func movedWidgetKind(t *testing.T, group, kind string) string {
	t.Helper()
	dir := movedWidgetTemplates(t, group)
	api := dir + "/widget/api/api.cue"
	src, err := os.ReadFile(api)
	if err != nil {
		t.Fatal(err)
	}
	lower := strings.ToLower(kind)
	renamed := strings.NewReplacer(`kind:     "Widget"`, `kind:     "`+kind+`"`, `plural:   "widgets"`, `plural:   "`+lower+`s"`, `singular: "widget"`, `singular: "`+lower+`"`).Replace(string(src))
	if renamed == string(src) {
		t.Fatalf("%s no longer names its kind as this helper expects", api)
	}
	writeFile(t, api, renamed)
	return dir
}

// uidOf returns the object's uid, or "" when it does not exist.
func uidOf(t *testing.T, ns, object string) string {
	t.Helper()
	out, err := kubectlOut(testCluster.KubeconfigPath, "get", object, "-n", ns, "--ignore-not-found", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatalf("kubectl get %s: %v: %s", object, err, out)
	}
	return strings.TrimSpace(out)
}

// A user's `kubectl annotate ... cuerator.dev/prune=Retain` (or Orphan) on a
// live child decides what happens to it when its CR is deleted: it
// outlives the CR (an Orphan without cuerator's labels), while a child
// without the annotation goes with it.
func TestUserRetainAndOrphanOutliveTheirCR(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "keep-user-policy")
	applyWidget(t, ns, "kept", "  withConfig: true\n")
	applyWidget(t, ns, "orphaned", "  withConfig: true\n")
	waitReady(t, ns, "widget/kept")
	waitReady(t, ns, "widget/orphaned")

	kubectl(t, "annotate", "configmap", "kept-config", "-n", ns, "cuerator.dev/prune=Retain")
	kubectl(t, "annotate", "deployment", "orphaned", "-n", ns, "cuerator.dev/prune=Orphan")
	eventually(t, 30*time.Second, "the annotated children no longer name their CR as owner", func() error {
		for _, object := range []string{"configmap/kept-config", "deployment/orphaned"} {
			if refs := jsonpath(t, ns, object, "{.metadata.ownerReferences}"); refs != "" {
				return fmt.Errorf("%s ownerReferences %s", object, refs)
			}
		}
		return nil
	})
	keptUID, orphanUID := uidOf(t, ns, "configmap/kept-config"), uidOf(t, ns, "deployment/orphaned")

	kubectl(t, "delete", "widget", "kept", "orphaned", "-n", ns, "--timeout=60s")
	// The children without the annotation go, which shows the garbage
	// collector has acted on both CRs.
	eventually(t, 90*time.Second, "unannotated children garbage collected", func() error {
		if exists(t, ns, "deployment", "kept") || exists(t, ns, "configmap", "orphaned-config") {
			return fmt.Errorf("deployment/kept or configmap/orphaned-config still there")
		}
		return nil
	})
	if uid := uidOf(t, ns, "configmap/kept-config"); uid != keptUID {
		t.Errorf("the ConfigMap a user marked Retain: uid %q, want %q (kept)", uid, keptUID)
	}
	if uid := uidOf(t, ns, "deployment/orphaned"); uid != orphanUID {
		t.Errorf("the Deployment a user marked Orphan: uid %q, want %q (kept)", uid, orphanUID)
	}
	eventually(t, 30*time.Second, "the orphan released", func() error {
		if l := jsonpath(t, ns, "deployment/orphaned", `{.metadata.labels.cuerator\.dev/owner-name}`); l != "" {
			return fmt.Errorf("the orphan still names its CR: owner-name %q", l)
		}
		return nil
	})
}

// Deleting a Database and creating it again with the same spec gives the
// same data volume and a Secret with the same password; with the Secret
// gone while the data stays, the Database says so instead of drawing a
// password the data was not made with.
func TestDatabaseKeepsItsCredentialsWithItsData(t *testing.T) {
	ns := namespace(t, "keep-database")
	const cr = "database/my-db"
	kubectl(t, "apply", "-n", ns, "-f", databaseSample)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")
	volume, secret := uidOf(t, ns, "pvc/data-my-db-0"), uidOf(t, ns, "secret/my-db-credentials")
	password := getObject(t, ns, "secret", "my-db-credentials").Data["password"]
	if volume == "" || secret == "" || password == "" {
		t.Fatalf("data volume %q, Secret %q, password set %v", volume, secret, password != "")
	}

	deleteDatabase := func() {
		t.Helper()
		kubectl(t, "delete", "-n", ns, cr, "--timeout=60s")
		eventually(t, 90*time.Second, "the StatefulSet garbage collected", func() error {
			if exists(t, ns, "statefulset", "my-db") {
				return fmt.Errorf("statefulset/my-db still there")
			}
			return nil
		})
	}
	deleteDatabase()
	if uidOf(t, ns, "pvc/data-my-db-0") != volume || uidOf(t, ns, "secret/my-db-credentials") != secret {
		t.Fatal("the data volume or its credentials went with the Database")
	}

	kubectl(t, "apply", "-n", ns, "-f", databaseSample)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")
	if got := uidOf(t, ns, "pvc/data-my-db-0"); got != volume {
		t.Errorf("the Database created again has data volume %s, want the old %s", got, volume)
	}
	if got := uidOf(t, ns, "secret/my-db-credentials"); got != secret {
		t.Errorf("the Database created again has Secret %s, want the old %s", got, secret)
	}
	if getObject(t, ns, "secret", "my-db-credentials").Data["password"] != password {
		t.Error("the Database created again has another password than its data")
	}

	t.Run("credentials lost, data kept", func(t *testing.T) {
		deleteDatabase()
		kubectl(t, "delete", "-n", ns, "secret/my-db-credentials")
		kubectl(t, "apply", "-n", ns, "-f", databaseSample)
		eventually(t, 60*time.Second, "the Database names the missing Secret and the data", func() error {
			c := condition(t, ns, cr, "Ready")
			if !strings.HasPrefix(c, "False/") || !strings.Contains(c, "Secret/"+ns+"/my-db-credentials is missing") || !strings.Contains(c, "PersistentVolumeClaim/"+ns+"/data-my-db-0") {
				return fmt.Errorf("Ready %q", c)
			}
			return nil
		})
		if c := condition(t, ns, cr, "Stalled"); !strings.HasPrefix(c, "True/") {
			t.Errorf("Stalled %q: nothing but a person can fix this", c)
		}
		if exists(t, ns, "secret", "my-db-credentials") {
			t.Error("a new password was drawn for data made with the old one")
		}
	})
}

// Two operator processes on one CR (overlapping shards, a second `cuerator
// run`, an upgrade in flight) find each other through the CR's status:
// with other templates, the one that would prune the other's child does
// not, the CR says Contested, and once one is gone the other carries on.
func TestTwoOperatorsOnOneCR(t *testing.T) {
	const group, kind = "contest.test.cuerator.dev", "Rival"
	cr := "rival." + group + "/w"
	withConfig := movedWidgetKind(t, group, kind)
	// The second operator's templates never produce the ConfigMap.
	without := movedWidgetKind(t, group, kind)
	widget := without + "/widget/widget.cue"
	src, err := os.ReadFile(widget)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, widget, strings.Replace(string(src), "if cr.spec.withConfig {", "if cr.spec.withConfig && false {", 1))

	lib, err := render.Load(os.DirFS(withConfig))
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, lib)
	first, err := startInProcess(testCluster.Config, lib, controllers.ManagerOptions{Options: quickReconciles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.stop() })
	ns := namespace(t, "keep-contest")
	kubectlIn(t, fmt.Sprintf("apiVersion: %s/v1\nkind: %s\nmetadata: {name: w, namespace: %s}\nspec: {withConfig: true}\n", group, kind, ns), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=90s")
	config := uidOf(t, ns, "configmap/w-config")

	// A second `cuerator run`, with other templates, on the same namespace.
	second := startOperator(t, buildCuerator(t), "contest-second", "--templates", without, "--watch-namespace", ns, "--conflict-retry=1s")
	// Both reconcile: a change of the CR's labels reaches both.
	for i := range 3 {
		kubectl(t, "label", "--overwrite", "-n", ns, cr, fmt.Sprintf("round=%d", i))
		time.Sleep(2 * time.Second)
	}
	eventually(t, 60*time.Second, "the CR says two operators reconcile it", func() error {
		if c := condition(t, ns, cr, controllers.ConditionContested); !strings.HasPrefix(c, "True/"+controllers.ReasonContested) || !strings.Contains(c, "other templates") {
			return fmt.Errorf("Contested %q", c)
		}
		return nil
	})
	if got := uidOf(t, ns, "configmap/w-config"); got != config {
		t.Errorf("the ConfigMap one operator renders was pruned by the other: uid %q, want %q", got, config)
	}
	// No hot loop: each process writes the status at most once per retry
	// (1 s here) while the contest lasts.
	watcher, err := client.NewWithWatch(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind + "List"})
	w, err := watcher.Watch(context.Background(), list, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	for quiet := time.After(5 * time.Second); ; {
		select {
		case <-w.ResultChan():
			updates++
			continue
		case <-quiet:
		}
		break
	}
	w.Stop()
	if updates > 14 {
		t.Errorf("%d updates of the contested CR in 5 s: the two operators answer each other's writes", updates)
	}
	t.Logf("%d updates of the contested CR in 5 s", updates)

	// The second one stops; the first is alone again.
	second.stop(t)
	kubectl(t, "label", "--overwrite", "-n", ns, cr, "round=alone")
	eventually(t, 60*time.Second, "Contested cleared", func() error {
		if c := condition(t, ns, cr, controllers.ConditionContested); c != "/: " {
			return fmt.Errorf("Contested %q", c)
		}
		return nil
	})
	if got := uidOf(t, ns, "configmap/w-config"); got != config {
		t.Errorf("ConfigMap uid %q, want %q", got, config)
	}
}

// cuerator's owner labels, set by someone else on an object cuerator did
// not write, grant it nothing: the object is neither changed nor deleted.
func TestOwnerLabelsAloneGrantNothing(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "keep-forged-labels")
	forged := func(name string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {app.kubernetes.io/managed-by: cuerator, cuerator.dev/owner-name: w, cuerator.dev/owner-kind: widget.test.cuerator.dev}\ndata: {owner: someone-else}\n", name, ns)
	}
	// One takes the name of a child; the other no child's name.
	kubectlIn(t, forged("w-config"), "create", "-f", "-")
	kubectlIn(t, forged("w-unrelated"), "create", "-f", "-")

	applyWidget(t, ns, "w", "  withConfig: true\n")
	eventually(t, 30*time.Second, "adoption refused", func() error {
		if c := condition(t, ns, "widget/w", "Stalled"); !strings.HasPrefix(c, "True/AdoptionRefused") || !strings.Contains(c, "w-config") {
			return fmt.Errorf("Stalled %q", c)
		}
		return nil
	})
	// Without the forged child in the way, the CR reconciles to its end,
	// pruning included.
	applyWidget(t, ns, "w", "  withConfig: false\n")
	waitReady(t, ns, "widget/w")
	for _, name := range []string{"w-config", "w-unrelated"} {
		if data := jsonpath(t, ns, "configmap/"+name, "{.data}"); data != `{"owner":"someone-else"}` {
			t.Errorf("configmap/%s, labelled as the CR's by someone else: data %s, want it untouched and not deleted", name, data)
		}
	}
}

// An inventory is status, which anyone allowed to write status can change:
// an entry naming a kind the template never produces, or an object in
// another namespace, is not pruned, even when the object looks like the
// CR's (its labels, and cuerator among its field managers).
func TestForgedInventoryEntriesAreNotPruned(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "keep-forged-inventory")
	elsewhere := namespace(t, "keep-forged-inventory-elsewhere")
	labels := "{app.kubernetes.io/managed-by: cuerator, cuerator.dev/owner-name: w, cuerator.dev/owner-kind: widget.test.cuerator.dev}"
	kubectlIn(t, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: precious, namespace: %s, labels: %s}\nstringData: {k: v}\n", ns, labels),
		"apply", "--server-side", "--field-manager=cuerator", "-f", "-")
	kubectlIn(t, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w-config, namespace: %s, labels: %s}\ndata: {k: v}\n", elsewhere, labels),
		"apply", "--server-side", "--field-manager=cuerator", "-f", "-")

	applyWidget(t, ns, "w", "  withConfig: true\n")
	waitReady(t, ns, "widget/w")
	inventory := jsonpath(t, ns, "widget/w", "{.status.inventory}")
	forged := strings.TrimSuffix(inventory, "]") + fmt.Sprintf(`,{"id":"%s_precious__Secret","v":"v1"},{"id":"%s_w-config__ConfigMap","v":"v1"}]`, ns, elsewhere)
	kubectl(t, "patch", "widget", "w", "-n", ns, "--subresource=status", "--type=merge", "-p", `{"status":{"inventory":`+forged+`}}`)
	// A spec change: the reconcile prunes from the inventory it finds.
	applyWidget(t, ns, "w", "  withConfig: false\n")
	waitReady(t, ns, "widget/w")
	eventually(t, 30*time.Second, "the forged entries dropped from the inventory", func() error {
		if inv := jsonpath(t, ns, "widget/w", "{.status.inventory[*].id}"); strings.Contains(inv, "precious") || strings.Contains(inv, elsewhere) {
			return fmt.Errorf("inventory %s", inv)
		}
		return nil
	})
	if !exists(t, ns, "secret", "precious") {
		t.Error("a Secret the Widget template never produces was pruned through a forged inventory entry")
	}
	if !exists(t, elsewhere, "configmap", "w-config") {
		t.Error("a ConfigMap in another namespace was pruned through a forged inventory entry")
	}
	if exists(t, ns, "configmap", "w-config") {
		t.Error("the Widget's own dropped ConfigMap was not pruned")
	}
}

// A definer is a cluster-scoped kind whose child is a CRD, with the
// recreate annotation on: a CRD's scope is immutable.
const definerAPI = `package api

#CRD: {group: "definers.test.cuerator.dev", version: "v1", kind: "Definer", plural: "definers", singular: "definer", scope: "Cluster"}
#Spec: {scope: "Namespaced" | "Cluster" | *"Namespaced"}
#Status: {...}
`

const definerTemplate = `package definer

import "test.cuerator.dev/definers/definer/api"

childKinds: [{apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition"}]
cr: {metadata: {name: string, ...}, spec: api.#Spec}
objects: crd: {
	apiVersion: "apiextensions.k8s.io/v1"
	kind:       "CustomResourceDefinition"
	metadata: {
		name: "things.defined.test.cuerator.dev"
		annotations: "cuerator.dev/recreate": "true"
	}
	spec: {
		group: "defined.test.cuerator.dev"
		names: {kind: "Thing", plural: "things", singular: "thing", listKind: "ThingList"}
		scope: cr.spec.scope
		versions: [{name: "v1", served: true, storage: true, schema: openAPIV3Schema: {type: "object", "x-kubernetes-preserve-unknown-fields": true}}]
	}
}
`

// cuerator.dev/recreate deletes and creates a child again when an
// immutable field changes, but never a CRD (every object of it would go)
// or a Namespace: the change is reported instead.
func TestRecreateNeverDeletesACRD(t *testing.T) {
	lib := installKind(t, "module: \"test.cuerator.dev/definers@v0\"\nlanguage: version: \"v0.17.0\"\n", "definer", definerAPI, definerTemplate)
	op, err := startInProcess(testCluster.Config, lib, controllers.ManagerOptions{Options: quickReconciles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.stop() })
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "crd", "things.defined.test.cuerator.dev", "--ignore-not-found")
	})

	kubectlIn(t, "apiVersion: definers.test.cuerator.dev/v1\nkind: Definer\nmetadata: {name: d}\nspec: {}\n", "apply", "-f", "-")
	kubectl(t, "wait", "--for=condition=Ready", "definer/d", "--timeout=90s")
	crd := uidOf(t, "", "crd/things.defined.test.cuerator.dev")

	kubectl(t, "patch", "definer", "d", "--type=merge", "-p", `{"spec":{"scope":"Cluster"}}`)
	eventually(t, 60*time.Second, "the immutable scope reported", func() error {
		if c := condition(t, "", "definer/d", "Ready"); !strings.HasPrefix(c, "False/ApplyFailed") || !strings.Contains(c, "immutable") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	if got := uidOf(t, "", "crd/things.defined.test.cuerator.dev"); got != crd {
		t.Errorf("the CRD was deleted and created again (uid %q, was %q)", got, crd)
	}
}

// A CR deleted after its reconcile read it and before a child the garbage
// collector would not collect (Retain) was created: no such child outlives
// it. The deletion is made to happen at that moment by the operator's own
// client, just before it creates the child.
func TestNoChildOutlivesACRDeletedBeforeItsCreation(t *testing.T) {
	const group = "gone.test.cuerator.dev"
	dir := movedWidgetKind(t, group, "Doomed")
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, lib)
	ns := namespace(t, "keep-deleted-first")
	admin, err := client.New(testCluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	widget := &unstructured.Unstructured{}
	widget.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Doomed"})
	widget.SetNamespace(ns)
	widget.SetName("w")

	var deleted atomic.Bool
	opts := controllers.ManagerOptions{Options: quickReconciles}
	opts.NewClient = func(cfg *rest.Config, o client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(cfg, o)
		if err != nil {
			return nil, err
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
				if u, ok := obj.(interface{ GetName() string }); ok && u.GetName() == "w-kept" && deleted.CompareAndSwap(false, true) {
					if err := admin.Delete(ctx, widget.DeepCopy()); err != nil {
						return err
					}
					for admin.Get(ctx, client.ObjectKeyFromObject(widget), widget.DeepCopy()) == nil {
						time.Sleep(50 * time.Millisecond)
					}
				}
				return c.Apply(ctx, obj, opts...)
			},
		}), nil
	}
	op, err := startInProcess(testCluster.Config, lib, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.stop() })

	kubectlIn(t, fmt.Sprintf("apiVersion: %s/v1\nkind: Doomed\nmetadata: {name: w, namespace: %s}\nspec: {withConfig: false, retained: true}\n", group, ns), "apply", "-f", "-")
	eventually(t, 60*time.Second, "the CR deleted as its retained child was about to be created", func() error {
		if !deleted.Load() {
			return fmt.Errorf("not yet")
		}
		if err := admin.Get(context.Background(), client.ObjectKeyFromObject(widget), widget.DeepCopy()); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Widget is still there: %v", err)
		}
		return nil
	})
	eventually(t, 90*time.Second, "no child of the deleted CR left", func() error {
		for _, object := range []string{"configmap/w-kept", "deployment/w"} {
			if uidOf(t, ns, object) != "" {
				return fmt.Errorf("%s outlives its CR, which was gone before it was created", object)
			}
		}
		return nil
	})
}

// A kind whose template does not use the CR's name in labels takes names
// up to 253 characters; its children carry valid labels (a hash of a long
// name) and the name whole in an annotation, and go with their CR.
const longNameAPI = `package api

#CRD: {group: "longnames.test.cuerator.dev", version: "v1", kind: "Longname", plural: "longnames", singular: "longname", scope: "Namespaced"}
#Spec: {}
#Status: {...}
`

const longNameTemplate = `package longname

import "test.cuerator.dev/longnames/longname/api"

childKinds: [{apiVersion: "v1", kind: "ConfigMap"}]
cr: {metadata: {name: string, namespace: string, ...}, spec: api.#Spec}
objects: config: {apiVersion: "v1", kind: "ConfigMap", metadata: name: "settings", data: greeting: "hello"}
`

func TestLongCRNamesGiveValidChildren(t *testing.T) {
	lib := installKind(t, "module: \"test.cuerator.dev/longnames@v0\"\nlanguage: version: \"v0.17.0\"\n", "longname", longNameAPI, longNameTemplate)
	op, err := startInProcess(testCluster.Config, lib, controllers.ManagerOptions{Options: quickReconciles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.stop() })
	ns := namespace(t, "keep-long-names")
	name := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60)
	kubectlIn(t, fmt.Sprintf("apiVersion: longnames.test.cuerator.dev/v1\nkind: Longname\nmetadata: {name: %s, namespace: %s}\nspec: {}\n", name, ns), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "longname/"+name, "--timeout=90s")
	if got := jsonpath(t, ns, "configmap/settings", `{.metadata.annotations.cuerator\.dev/owner-name}`); got != name {
		t.Errorf("owner-name annotation %q, want the whole name", got)
	}
	if l := jsonpath(t, ns, "configmap/settings", `{.metadata.labels.cuerator\.dev/owner-name}`); len(l) > 63 || l == "" {
		t.Errorf("owner-name label %q: want a label value", l)
	}
	kubectl(t, "delete", "-n", ns, "longname/"+name, "--timeout=60s")
	eventually(t, 90*time.Second, "the child garbage collected", func() error {
		if exists(t, ns, "configmap", "settings") {
			return fmt.Errorf("configmap/settings still there")
		}
		return nil
	})
}
