package main

import "testing"

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
