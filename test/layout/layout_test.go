// Package layout holds the import rules of cuerator's packages, each stated
// in one line and checked against `go list`: rendering knows CUE, applying
// knows the API server, the child contract knows neither, generators know
// their output formats.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cuerator/cuerator/"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// rule forbids the packages under `of` to depend (directly or not) on any
// import path that starts with one of `not`.
type rule struct {
	of   string
	not  []string
	why  string
	deep bool // Deps (transitive) rather than Imports (direct)
}

var (
	cue = "cuelang.org/go/"
	ssa = "github.com/fluxcd/pkg/ssa"
)

var rules = []rule{
	{of: "child", not: []string{cue, ssa, module}, deep: true, why: "the child contract knows object metadata only"},
	{of: "render", not: []string{ssa, module + "apply", module + "preview", module + "controllers", module + "generate", module + "crdgen"}, deep: true, why: "rendering knows CUE, never the API server"},
	{of: "kubeschema", not: []string{cue, ssa, module}, deep: true, why: "the Kubernetes API's schemas of the built-in kinds know nothing of CUE or of cuerator"},
	{of: "templatetest", not: []string{ssa, module + "apply", module + "preview", module + "controllers", module + "generate", module + "crdgen"}, deep: true, why: "a template module's tests render offline, with no cluster"},
	{of: "crdgen", not: []string{ssa, module + "apply", module + "preview", module + "controllers", module + "generate"}, deep: true, why: "CRD generation knows CUE and the CRD format"},
	{of: "compat", not: []string{ssa, module + "apply", module + "preview", module + "controllers", module + "generate"}, deep: true, why: "comparing two template modules knows their CRDs, never the cluster"},
	{of: "convert", not: []string{ssa, module + "apply", module + "preview", module + "controllers", module + "generate"}, deep: true, why: "conversion knows the kinds' versions (through render) and the API server's conversion protocol, never applying children"},
	{of: "apply", not: []string{cue, module + "render", module + "crdgen", module + "preview", module + "controllers", module + "generate"}, deep: true, why: "applying knows the API server and the child contract, never CUE or the templates"},
	{of: "preview", not: []string{module + "controllers", module + "generate", module + "cmd"}, deep: true, why: "the preview composes render and apply, nothing else"},
	{of: "generate", not: []string{ssa, module + "apply", module + "preview", module + "controllers"}, deep: true, why: "generators are functions of the library"},
	{of: "controllers", not: []string{module + "generate", module + "preview", module + "cmd"}, deep: true, why: "the operator needs no authoring outputs"},
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < 8 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(rel, "test/") {
			continue
		}
		usesCUE, usesSSA := false, false
		for _, imp := range p.Imports {
			usesCUE = usesCUE || strings.HasPrefix(imp, cue)
			usesSSA = usesSSA || strings.HasPrefix(imp, ssa)
		}
		if usesCUE && usesSSA {
			t.Errorf("%s imports both CUE and fluxcd/pkg/ssa: rendering and applying belong to different packages", rel)
		}
		for _, r := range rules {
			if rel != r.of && !strings.HasPrefix(rel, r.of+"/") {
				continue
			}
			deps := p.Imports
			if r.deep {
				deps = p.Deps
			}
			var offending []string
			for _, d := range deps {
				for _, bad := range r.not {
					if strings.HasPrefix(d, bad) && !(bad == module && strings.HasPrefix(d, module+r.of)) {
						offending = append(offending, d)
					}
				}
			}
			if len(offending) > 3 {
				offending = append(offending[:3], "...")
			}
			if len(offending) > 0 {
				t.Errorf("%s depends on %s: %s", rel, strings.Join(offending, ", "), r.why)
			}
		}
	}
}

// A rule of this test that names a package which no longer exists would
// pass for ever.
func TestRulesNameRealPackages(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range list(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		seen[strings.SplitN(rel, "/", 2)[0]] = true
	}
	for _, r := range rules {
		if !seen[r.of] {
			t.Errorf("rule for %s: no such package", r.of)
		}
	}
}

func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}
