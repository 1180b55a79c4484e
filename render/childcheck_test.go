package render_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/render"
)

// The shipped kinds' children pass their kinds' built-in schemas; a
// ServiceMonitor (a CRD's kind) is listed as not checked.
func TestShippedChildrenPassTheirSchemas(t *testing.T) {
	for _, mode := range []render.Option{render.InProcess(), render.Workers(1)} {
		lib := loadLibrary(t, render.CheckChildren(), mode)
		for _, path := range []string{"../examples/memcached-sample.yaml", webAppSample, databaseSample} {
			cr := readCR(t, path)
			cr.SetNamespace("team-a")
			if spec, ok := cr.Object["spec"].(map[string]any); ok && cr.GetKind() == "WebApp" {
				spec["monitoring"] = map[string]any{"enabled": true}
				spec["tls"] = map[string]any{"secretName": "tls"}
			}
			out, err := lib.RenderCR(cr)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			want := []string(nil)
			if cr.GetKind() == "WebApp" {
				want = []string{"serviceMonitor"}
			}
			if !slices.Equal(out.Unchecked, want) {
				t.Errorf("%s: unchecked %v, want %v", path, out.Unchecked, want)
			}
		}
	}
}

// A misspelt field of a Deployment, in the template or in a YAML file it
// embeds, fails the render offline, naming the field and its file:line;
// without CheckChildren it passes (and would fail only at apply).
func TestMisspeltChildFieldFailsTheRender(t *testing.T) {
	dir := moduleWith(t, plainModule, `@extern(embed)
package x
childKinds: [{apiVersion: "apps/v1", kind: "Deployment"}]
cr: {metadata: {name: string, ...}, spec: {}}
_base: _ @embed(file="base.yaml")
objects: web: _base & {
	apiVersion: "apps/v1"
	kind:       "Deployment"
	metadata: name: cr.metadata.name
	spec: {
		replicas: "3"
		selector: matchLabels: app: "web"
		template: {
			metadata: labels: app: "web"
			spec: containers: [{
				name:             "web"
				image:            "nginx"
				imagePullPolicyy: "Always"
			}]
		}
	}
}
`)
	if err := os.WriteFile(filepath.Join(dir, "x", "base.yaml"), []byte("spec:\n  revisionHistoryLimitt: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cr := pairsCR("web", 0)
	cr.Object["spec"] = map[string]any{}

	plain, err := render.Load(os.DirFS(dir), render.InProcess())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.RenderCR(cr); err != nil {
		t.Fatalf("without CheckChildren: %v", err)
	}

	lib, err := render.Load(os.DirFS(dir), render.InProcess(), render.CheckChildren())
	if err != nil {
		t.Fatal(err)
	}
	_, err = lib.RenderCR(cr)
	var terr *render.TemplateError
	var verr *render.ValidationError
	if !errors.As(err, &terr) || !errors.As(err, &verr) {
		t.Fatalf("want a template error with field errors, got %v", err)
	}
	got := map[string]render.FieldError{}
	for _, fe := range verr.Errs {
		got[fe.Path] = fe
	}
	for path, want := range map[string]struct{ message, pos string }{
		"objects.web.spec.template.spec.containers[0].imagePullPolicyy": {"unknown field", "x/x.cue:18"},
		"objects.web.spec.revisionHistoryLimitt":                        {"unknown field", "x/base.yaml:2"},
		"objects.web.spec.replicas":                                     {`is the string "3"; the schema of Deployment apps/v1 wants a number`, "x/x.cue:11"},
	} {
		fe, ok := got[path]
		if !ok || !strings.Contains(fe.Message, want.message) || fe.Pos != want.pos {
			t.Errorf("%s: %+v, want %q at %s", path, fe, want.message, want.pos)
		}
	}
	if len(verr.Errs) != 3 {
		t.Errorf("%d errors, want 3: %v", len(verr.Errs), err)
	}
}
