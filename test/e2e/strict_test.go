package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Every shipped kind runs in a namespace that enforces the restricted Pod
// Security Standard: their pods are admitted there.
func TestShippedKindsRunWhereRestrictedIsEnforced(t *testing.T) {
	ns := namespace(t, "restricted")
	kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest")
	for _, sample := range []string{memcachedSample, webAppSample, databaseSample} {
		kubectl(t, "apply", "-n", ns, "-f", sample)
	}
	for _, cr := range []string{"memcached/memcached-sample", "webapp/my-webapp", "database/my-db"} {
		if out, err := kubectlOut(testCluster.KubeconfigPath, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s"); err != nil {
			events := kubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=FailedCreate", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
			t.Errorf("%s is not Ready in a restricted namespace: %s\nFailedCreate events:\n%s", cr, out, events)
		}
	}
}

// A Deployment whose pods a ResourceQuota refuses names the quota in the
// CR's Ready message; once past its progress deadline (kstatus Failed) the
// CR is Stalled, and it recovers when the quota is lifted.
func TestRefusedPodsAreNamedAndAPassedDeadlineStalls(t *testing.T) {
	ns := namespace(t, "quota")
	kubectlIn(t, "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: no-pods\nspec:\n  hard:\n    pods: \"0\"\n", "apply", "-n", ns, "-f", "-")
	const cr = "memcached/memcached-sample"
	kubectl(t, "apply", "-n", ns, "-f", memcachedSample)
	eventually(t, 90*time.Second, "the quota named in Ready", func() error {
		if c := condition(t, ns, cr, "Ready"); !strings.Contains(c, "exceeded quota") {
			return fmt.Errorf("Ready %q", c)
		}
		return nil
	})
	if s := condition(t, ns, cr, "Stalled"); strings.HasPrefix(s, "True") {
		t.Errorf("Stalled before the progress deadline: %q", s)
	}

	// A short deadline (no field of the template: not cuerator's, not drift).
	kubectl(t, "patch", "-n", ns, "deployment/memcached-sample", "--type=merge", "-p", `{"spec":{"progressDeadlineSeconds":5}}`)
	eventually(t, 90*time.Second, "Stalled past the deadline", func() error {
		if s := condition(t, ns, cr, "Stalled"); !strings.HasPrefix(s, "True/ChildFailed") || !strings.Contains(s, "Deployment/"+ns+"/memcached-sample") {
			return fmt.Errorf("Stalled %q", s)
		}
		return nil
	})

	kubectl(t, "delete", "-n", ns, "resourcequota/no-pods")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=180s")
	if s := condition(t, ns, cr, "Stalled"); strings.HasPrefix(s, "True") {
		t.Errorf("still Stalled once Ready: %q", s)
	}
}
