package render_test

import (
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/cuerator/cuerator/render"
)

// FuzzRender feeds arbitrary specs to every kind: a render may refuse one,
// with an error, but never panics. The seed corpus is in
// testdata/fuzz/FuzzRender; CI runs the fuzzer for a bounded time.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		`{"size": 3, "image": "memcached:1.6"}`,
		`{"replicas": 3, "image": "nginx:alpine", "port": 80, "domain": "example.com", "tls": {"secretName": "x"}, "monitoring": {"enabled": true}}`,
		`{"type": "postgresql", "version": "13", "storage": {"size": "10Gi"}, "backup": {"enabled": true, "schedule": "0 2 * * *"}}`,
		`{"type": "mysql", "version": "9.1.0", "storage": {"size": "10Gi"}, "mysql": {"instances": 3, "router": {"instances": 2}}}`,
		`{"serviceMonitorSelector": {"matchLabels": {"team": "frontend"}}, "resources": {"requests": {"memory": "400Mi"}}}`,
		`{"version": "8.8.0", "nodeSets": [{"name": "default", "count": 1, "roles": ["master", "data", "ingest"]}]}`,
		`{"size": 1e400}`, `{"size": -1}`, `{"replicas": "3"}`, `[]`, `null`, `{"": {}}`,
	} {
		f.Add([]byte(seed))
	}
	// In this process, where a panic fails the fuzzer (in a worker it
	// would only end the worker).
	lib := loadLibrary(f, render.InProcess())
	f.Fuzz(func(t *testing.T, spec []byte) {
		var value any
		if utiljson.Unmarshal(spec, &value) != nil {
			return
		}
		for _, kind := range lib.Kinds() {
			cr := readCR(t, examples[kind.GVK.Kind])
			cr.SetNamespace("fuzz")
			cr.Object["spec"] = value
			_, _ = kind.Render(cr)
		}
	})
}
