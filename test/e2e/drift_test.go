package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// kubectl scale of a child is undone and reported; under drift policy
// report it stays and the CR says Drifted.
func TestDriftCorrectedThenReported(t *testing.T) {
	ns := namespace(t, "drift")
	kubectl(t, "apply", "-n", ns, "-f", sample)
	waitReady(t, ns, "memcached/memcached-sample")

	kubectl(t, "scale", "deployment", "memcached-sample", "-n", ns, "--replicas=7")
	eventually(t, 30*time.Second, "replicas back to the CR's 3", func() error {
		if r := jsonpath(t, ns, "deployment/memcached-sample", "{.spec.replicas}"); r != "3" {
			return fmt.Errorf("replicas %s", r)
		}
		return nil
	})
	eventually(t, 30*time.Second, "a Drifted event naming the field and the manager", func() error {
		msgs := kubectl(t, "get", "events", "-n", ns, "--field-selector=reason=Drifted", "-o", "jsonpath={range .items[*]}{.message}{'\\n'}{end}")
		if !strings.Contains(msgs, ".spec.replicas") || !strings.Contains(msgs, "kubectl") || !strings.Contains(msgs, "corrected") {
			return fmt.Errorf("events: %q", msgs)
		}
		return nil
	})

	kubectl(t, "annotate", "memcached", "memcached-sample", "-n", ns, "cuerator.dev/drift=report")
	kubectl(t, "scale", "deployment", "memcached-sample", "-n", ns, "--replicas=7")
	eventually(t, 30*time.Second, "Drifted=True naming .spec.replicas", func() error {
		if c := condition(t, ns, "memcached/memcached-sample", "Drifted"); !strings.HasPrefix(c, "True/") || !strings.Contains(c, ".spec.replicas") {
			return fmt.Errorf("Drifted condition %q", c)
		}
		return nil
	})
	if r := jsonpath(t, ns, "deployment/memcached-sample", "{.spec.replicas}"); r != "7" {
		t.Errorf("under policy report the change was undone: replicas %s", r)
	}

	// Back to correct: the next reconcile undoes it and clears Drifted.
	kubectl(t, "annotate", "memcached", "memcached-sample", "-n", ns, "cuerator.dev/drift-")
	eventually(t, 30*time.Second, "corrected after the policy is lifted", func() error {
		r := jsonpath(t, ns, "deployment/memcached-sample", "{.spec.replicas}")
		c := condition(t, ns, "memcached/memcached-sample", "Drifted")
		if r != "3" || !strings.HasPrefix(c, "/") {
			return fmt.Errorf("replicas %s, Drifted %q", r, c)
		}
		return nil
	})
}
