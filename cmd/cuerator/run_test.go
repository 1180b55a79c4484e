package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Metrics are served with authentication unless only this machine can
// reach them.
func TestMetricsSecureUnlessLoopback(t *testing.T) {
	for addr, loopback := range map[string]bool{
		"127.0.0.1:8080": true,
		"[::1]:8080":     true,
		"localhost:8080": true,
		"127.1.2.3:9000": true,
		":8443":          false,
		"0.0.0.0:8080":   false,
		"10.0.0.1:8080":  false,
		"[::]:8080":      false,
		"0":              false, // off: nothing is served
	} {
		if got := isLoopback(addr); got != loopback {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, loopback)
		}
	}
}

// Each shard elects its leader among its own replicas: the Lease's name
// comes from what makes the shard.
func TestShardLease(t *testing.T) {
	if got := shardLease("", ""); got != defaultLease {
		t.Errorf("an operator of every CR: lease %q, want %q", got, defaultLease)
	}
	leases := map[string]bool{}
	for _, shard := range [][2]string{{"", "shard=a"}, {"", "shard=b"}, {"team-a", ""}, {"team-a", "shard=a"}} {
		lease := shardLease(shard[0], shard[1])
		if leases[lease] {
			t.Errorf("shard %v shares lease %q with another", shard, lease)
		}
		leases[lease] = true
		if msgs := validation.IsDNS1123Subdomain(lease); len(msgs) > 0 {
			t.Errorf("lease %q is not a valid name: %v", lease, msgs)
		}
		if again := shardLease(shard[0], shard[1]); again != lease {
			t.Errorf("shard %v: lease %q, then %q", shard, lease, again)
		}
	}
}
