package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cuerator/cuerator/generate/argocd"
	"github.com/cuerator/cuerator/test/gitops"
)

const memcachedSample = "../../examples/memcached-sample.yaml"

// A suspended Memcached keeps an outside kubectl scale for as long as it is
// suspended, says so in a condition (and to Argo CD), and is corrected
// once resumed.
func TestSuspendLeavesChildrenAlone(t *testing.T) {
	ns := namespace(t, "suspend")
	const cr = "memcached/memcached-sample"
	kubectl(t, "apply", "-n", ns, "-f", memcachedSample)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")

	kubectl(t, "annotate", "-n", ns, cr, "cuerator.dev/suspend=true")
	live := waitCondition(t, ns, cr, "Suspended")
	if h, err := gitops.RunArgoCDHealth(argocd.HealthLua, live.Object); err != nil || h.Status != "Suspended" {
		t.Errorf("Argo CD health of the suspended CR: %+v (%v), want Suspended", h, err)
	}

	kubectl(t, "scale", "-n", ns, "deployment/memcached-sample", "--replicas=5")
	// A new generation, and news from the child: both reconcile the CR,
	// and neither may undo the scale or apply the new size.
	kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"size":2}}`)
	time.Sleep(5 * time.Second)
	if got := jsonpath(t, ns, "deployment/memcached-sample", "{.spec.replicas}"); got != "5" {
		t.Fatalf("the suspended CR's Deployment has %s replicas, want the 5 kubectl scale set", got)
	}
	if g := jsonpath(t, ns, cr, "{.status.observedGeneration}"); g != "1" {
		t.Errorf("the suspended CR reports observedGeneration %s: it has not reconciled generation 2", g)
	}

	kubectl(t, "annotate", "-n", ns, cr, "cuerator.dev/suspend-")
	waitForDeploymentReplicas(t, ns, "memcached-sample", "2")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	if c := condition(t, ns, cr, "Suspended"); strings.HasPrefix(c, "True") {
		t.Errorf("the resumed CR still has a Suspended condition: %q", c)
	}
}

// A WebApp with spec.autoscaling has a HorizontalPodAutoscaler, and the
// Deployment's replicas are the autoscaler's: a scale of the Deployment (as
// the autoscaler does it) is not undone, also when the WebApp changes. A
// WebApp that had no autoscaling keeps its pods when it gets one.
func TestAutoscaledWebAppLeavesReplicasToTheAutoscaler(t *testing.T) {
	ns := namespace(t, "webapp-hpa")
	const cr = "webapp/my-webapp"
	manifest := func(autoscaling, image string) string {
		return fmt.Sprintf(`apiVersion: apps.example.com/v1alpha1
kind: WebApp
metadata:
  name: my-webapp
spec:
  replicas: 3
  image: %s
  domain: shop.example.com
%s`, image, autoscaling)
	}
	kubectlIn(t, manifest("", "nginx:alpine"), "apply", "-n", ns, "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	waitForDeploymentReplicas(t, ns, "my-webapp", "3")

	// Autoscaling added to a WebApp that runs: its 3 pods stay (handing
	// replicas over must not drop them to the default of 1).
	const autoscaling = "  autoscaling:\n    minReplicas: 2\n    maxReplicas: 6\n"
	kubectlIn(t, manifest(autoscaling, "nginx:alpine"), "apply", "-n", ns, "-f", "-")
	eventually(t, 60*time.Second, "the HorizontalPodAutoscaler", func() error {
		if !exists(t, ns, "horizontalpodautoscaler", "my-webapp") {
			return fmt.Errorf("no hpa/my-webapp")
		}
		return nil
	})
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	if got := jsonpath(t, ns, "hpa/my-webapp", "{.spec.scaleTargetRef.name} {.spec.minReplicas} {.spec.maxReplicas}"); got != "my-webapp 2 6" {
		t.Errorf("hpa target, min, max = %q", got)
	}
	if got := jsonpath(t, ns, "deployment/my-webapp", "{.spec.replicas}"); got != "3" {
		t.Errorf("adding autoscaling changed the Deployment's replicas to %s, want 3", got)
	}
	managers := jsonpath(t, ns, "deployment/my-webapp", `{range .metadata.managedFields[*]}{.manager}={.fieldsV1.f:spec.f:replicas}{"\n"}{end}`)
	for _, line := range strings.Split(managers, "\n") {
		if strings.HasPrefix(line, "cuerator=") && strings.TrimPrefix(line, "cuerator=") != "" {
			t.Errorf("cuerator still owns spec.replicas:\n%s", managers)
		}
	}

	// As the autoscaler would, through the Deployment's scale subresource.
	kubectl(t, "scale", "-n", ns, "deployment/my-webapp", "--replicas=4")
	// A change to the WebApp rewrites the Deployment, but not its replicas.
	kubectlIn(t, manifest(autoscaling, "nginx:1.27-alpine"), "apply", "-n", ns, "-f", "-")
	eventually(t, 60*time.Second, "the new image applied", func() error {
		if got := jsonpath(t, ns, "deployment/my-webapp", "{.spec.template.spec.containers[0].image}"); got != "nginx:1.27-alpine" {
			return fmt.Errorf("image %s", got)
		}
		return nil
	})
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=120s")
	if got := jsonpath(t, ns, "deployment/my-webapp", "{.spec.replicas}"); got != "4" {
		t.Errorf("the Deployment has %s replicas after the WebApp changed, want the autoscaler's 4", got)
	}
	if d := condition(t, ns, cr, "Drifted"); strings.HasPrefix(d, "True") {
		t.Errorf("the autoscaler's replicas are reported as drift: %s", d)
	}
}

// A Database's StatefulSet is applied only once its credentials Secret
// exists: while a quota refuses the Secret, there is no StatefulSet, and the
// Database is not Ready.
func TestDatabaseWaitsForItsCredentials(t *testing.T) {
	ns := namespace(t, "database-order")
	kubectlIn(t, `apiVersion: v1
kind: ResourceQuota
metadata:
  name: no-secrets
spec:
  hard:
    count/secrets: "0"
`, "apply", "-n", ns, "-f", "-")
	const cr = "database/my-db"
	kubectl(t, "apply", "-n", ns, "-f", databaseSample)
	eventually(t, 60*time.Second, "the Database saying why it is not Ready", func() error {
		if c := condition(t, ns, cr, "Ready"); !strings.Contains(c, "my-db-credentials") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // what would be applied at once has been
	if exists(t, ns, "statefulset", "my-db") {
		t.Fatal("the StatefulSet was applied before its credentials Secret existed")
	}
	if !exists(t, ns, "service", "my-db") {
		t.Error("the Services, which wait for nothing, were not applied")
	}

	kubectl(t, "delete", "-n", ns, "resourcequota/no-secrets")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")
	// RFC 3339 times in UTC compare as strings.
	secretCreated, stsCreated := jsonpath(t, ns, "secret/my-db-credentials", "{.metadata.creationTimestamp}"), jsonpath(t, ns, "statefulset/my-db", "{.metadata.creationTimestamp}")
	if stsCreated < secretCreated {
		t.Errorf("StatefulSet created at %s, before its Secret (%s)", stsCreated, secretCreated)
	}
}

// kstatus calls a CronJob Current whatever its Jobs do: the Database's
// template judges its backup CronJob, and a last run that did not succeed
// makes the Database Ready=False naming the CronJob, until a run succeeds.
func TestFailedBackupMakesDatabaseNotReady(t *testing.T) {
	ns := namespace(t, "database-backup")
	const cr = "database/my-db"
	kubectl(t, "apply", "-n", ns, "-f", databaseSample)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")

	// What the CronJob controller writes after a run whose Job failed: it
	// was scheduled, and the last success is older.
	now := time.Now().UTC().Truncate(time.Second)
	writeCronJobStatus := func(scheduled, succeeded time.Time) {
		t.Helper()
		kubectl(t, "patch", "-n", ns, "cronjob/my-db-backup", "--subresource=status", "--type=merge", "-p",
			fmt.Sprintf(`{"status":{"lastScheduleTime":%q,"lastSuccessfulTime":%q}}`, scheduled.Format(time.RFC3339), succeeded.Format(time.RFC3339)))
	}
	writeCronJobStatus(now, now.Add(-24*time.Hour))
	eventually(t, 60*time.Second, "the Database naming its failed backup", func() error {
		c := condition(t, ns, cr, "Ready")
		if !strings.HasPrefix(c, "False") || !strings.Contains(c, "CronJob/"+ns+"/my-db-backup") || !strings.Contains(c, "did not succeed") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})

	writeCronJobStatus(now, now.Add(30*time.Second))
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=60s")
}

// A child that reads another's live state (observed.children) renders
// once that one exists, with what it read, and again when that changes.
func TestChildReadsAnotherChildsLiveState(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "graph-relay")
	applyWidget(t, ns, "w", "  withConfig: true\n  relay: true\n")
	waitReady(t, ns, "widget/w")
	relayed := func() string { return jsonpath(t, ns, "configmap/w-relay", "{.data.configUID}") }
	if uid := uidOf(t, ns, "configmap/w-config"); uid == "" || relayed() != uid {
		t.Fatalf("the relay holds %q, want the config's uid %q", relayed(), uid)
	}

	// The config deleted: created again with a new uid, which the relay
	// then reads.
	kubectl(t, "delete", "-n", ns, "configmap/w-config")
	eventually(t, 60*time.Second, "the relay following the new config", func() error {
		uid := uidOf(t, ns, "configmap/w-config")
		if uid == "" || relayed() != uid {
			return fmt.Errorf("config uid %q, relay %q", uid, relayed())
		}
		return nil
	})
	waitReady(t, ns, "widget/w")
}

func waitForDeploymentReplicas(t *testing.T, ns, name, want string) {
	t.Helper()
	eventually(t, 90*time.Second, "deployment/"+name+" with "+want+" replicas", func() error {
		if got := jsonpath(t, ns, "deployment/"+name, "{.spec.replicas}"); got != want {
			return fmt.Errorf("spec.replicas %s", got)
		}
		return nil
	})
}

// A template that reads a ConfigMap (an input): while it is missing, the CR
// says which and nothing is applied; once there, its data is rendered, and
// a change to it renders the CR again.
func TestInputChangeRendersAgain(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "graph-input")
	applyWidget(t, ns, "w", "  withConfig: true\n  settings: w-settings\n")
	eventually(t, 60*time.Second, "the missing input named", func() error {
		if c := condition(t, ns, "widget/w", "Ready"); !strings.Contains(c, "InputMissing") || !strings.Contains(c, "ConfigMap/"+ns+"/w-settings") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	if exists(t, ns, "deployment", "w") {
		t.Error("children were applied while an input is missing")
	}

	settings := func(greeting string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w-settings\ndata:\n  greeting: " + greeting + "\n"
	}
	kubectlIn(t, settings("hi"), "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "widget/w")
	greeting := func() string { return jsonpath(t, ns, "configmap/w-config", "{.data.greeting}") }
	if g := greeting(); g != "hi" {
		t.Fatalf("the config's greeting is %q, want the input's hi", g)
	}
	kubectlIn(t, settings("hey"), "apply", "-n", ns, "-f", "-")
	eventually(t, 60*time.Second, "the config following its input", func() error {
		if g := greeting(); g != "hey" {
			return fmt.Errorf("greeting %q", g)
		}
		return nil
	})
}

// A template that asks for it deletes its children in the reverse of their
// order: the relay, which reads the config, goes first, and the config
// stays until it has gone. A stage that never goes is waited for at most
// the deletion timeout (20 s here), said in the CR's status meanwhile,
// and then the garbage collector takes the rest.
func TestDeletionInOrder(t *testing.T) {
	startWidgets(t)
	ns := namespace(t, "graph-delete")
	applyWidget(t, ns, "w", "  withConfig: true\n  relay: true\n")
	waitReady(t, ns, "widget/w")
	// Something of the user's holds the relay back.
	kubectl(t, "patch", "-n", ns, "configmap/w-relay", "--type=merge", "-p", `{"metadata":{"finalizers":["test.cuerator.dev/hold"]}}`)
	t.Cleanup(func() {
		_, _ = kubectlOut(testCluster.KubeconfigPath, "patch", "-n", ns, "configmap/w-relay", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	})
	kubectl(t, "delete", "-n", ns, "widget/w", "--wait=false")

	eventually(t, 30*time.Second, "the CR saying what it waits for", func() error {
		if c := condition(t, ns, "widget/w", "Reconciling"); !strings.Contains(c, "Deleting") || !strings.Contains(c, "ConfigMap/"+ns+"/w-relay") {
			return fmt.Errorf("Reconciling %q", c)
		}
		return nil
	})
	if jsonpath(t, ns, "configmap/w-relay", "{.metadata.deletionTimestamp}") == "" {
		t.Error("the relay, first to go, is not being deleted")
	}
	if !exists(t, ns, "configmap", "w-config") || jsonpath(t, ns, "configmap/w-config", "{.metadata.deletionTimestamp}") != "" {
		t.Error("the config was deleted before the relay that reads it had gone")
	}

	// Past the timeout the CR goes, and the garbage collector takes the
	// config.
	eventually(t, 60*time.Second, "the CR gone after the deletion timeout", func() error {
		if exists(t, ns, "widget", "w") {
			return fmt.Errorf("widget/w still there")
		}
		return nil
	})
	eventually(t, 60*time.Second, "the config collected", func() error {
		if exists(t, ns, "configmap", "w-config") {
			return fmt.Errorf("configmap/w-config still there")
		}
		return nil
	})
	if !strings.Contains(kubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=DeletionUnordered", "-o", "jsonpath={.items[*].message}"), "w-relay") {
		t.Error("no DeletionUnordered event naming the relay")
	}
}
