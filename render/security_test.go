package render_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/render"
)

// A template module with one kind whose template is body.
func moduleWith(t *testing.T, moduleCue, body string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"cue.mod/module.cue": moduleCue,
		"x/api/api.cue": `package api
#CRD: {group: "sec.test", version: "v1", kind: "X", plural: "xs", singular: "x", scope: "Namespaced"}
#Spec: {}
#Status: {...}
`,
		"x/x.cue": body,
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const plainModule = "module: \"sec.test/m@v0\"\nlanguage: version: \"v0.17.0\"\n"

// Templates cannot read the host's files, reach the network through module
// dependencies, or run commands.
func TestTemplatesCannotReachOutside(t *testing.T) {
	for name, tc := range map[string]struct{ module, body, want string }{
		"embed a file outside the module": {plainModule, "@extern(embed)\npackage x\nchildKinds: []\ncr: _\nobjects: {}\nleak: _ @embed(file=\"../../../../../../etc/hostname\", type=text)\n", "parent directory"},
		"embed an absolute path":          {plainModule, "@extern(embed)\npackage x\nchildKinds: []\ncr: _\nobjects: {}\nleak: _ @embed(file=\"/etc/hostname\", type=text)\n", "only relative files"},
		"depend on a registry module": {"module: \"sec.test/m@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: \"example.com/evil@v0\": v: \"v0.0.1\"\n",
			"package x\nimport \"example.com/evil\"\nchildKinds: []\ncr: _\nobjects: {}\nx: evil.x\n", "evil"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render.Load(os.DirFS(moduleWith(t, tc.module, tc.body)))
			if err == nil {
				t.Fatal("the module loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not say why: %v", err)
			}
		})
	}

	// The tool packages describe commands for `cue cmd`; a template may
	// not import them at all.
	for _, pkg := range []string{"tool/exec", "tool/file", "tool/http", "tool/os"} {
		_, err := render.Load(os.DirFS(moduleWith(t, plainModule, "package x\nimport \""+pkg+"\"\nchildKinds: []\ncr: _\nobjects: {}\nt: "+filepath.Base(pkg)+"\n")))
		if err == nil || !strings.Contains(err.Error(), "tool packages") {
			t.Errorf("import %q: %v", pkg, err)
		}
	}
}
