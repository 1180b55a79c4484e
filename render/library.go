// Package render loads a CUE template module and turns custom resources
// into the objects they stand for, with no cluster: the library of kinds
// (and the checks a module passes when it loads), the checks a CR passes
// before its render, the render itself under its budget (budget.go; the
// operator's renders run in worker processes, worker.go), the template's
// status projection and the diagnostics of CUE errors. It knows CUE and
// Kubernetes objects; it never talks to an API server.
package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/interpreter/embed"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Library is a loaded template module: every kind it defines, compiled once.
// Its values are immutable and safe to share between goroutines.
type Library struct {
	kinds []*Kind
	// byGK finds a kind whatever version is asked for: a kind is one CRD,
	// and a template module changed under a running operator (its versions
	// with it) must still be found as the same kind, not as a new one.
	byGK   map[schema.GroupKind]*Kind
	digest string
	env    *environment
}

// Kinds returns the kinds in a stable order (by group, then kind).
func (l *Library) Kinds() []*Kind { return l.kinds }

// Kind returns the kind of gvk's group and kind, or nil, whichever version
// gvk names: the kind's GVK is the version its template renders, and
// Versions those it serves (Kind.Version tells whether it serves gvk's).
func (l *Library) Kind(gvk schema.GroupVersionKind) *Kind { return l.byGK[gvk.GroupKind()] }

// Digest identifies the template sources; it changes whenever any file does.
func (l *Library) Digest() string { return l.digest }

// Close stops the library's worker processes; its kinds cannot render
// afterwards. A library whose kinds are all unreachable is closed by the
// garbage collector; Close does it at once.
func (l *Library) Close() { l.env.eval.close() }

// Load compiles every kind of the CUE module rooted at fsys. A kind is a
// directory holding a template package with an `api` package beneath it.
// Symbolic links inside fsys are followed (a mounted ConfigMap is made of
// them); one that leads outside it is refused.
//
// Renders run under DefaultBudget (see Budget), in worker processes,
// unless opts say otherwise.
func Load(fsys fs.FS, opts ...Option) (*Library, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	fsys = followLinks(fsys)
	if _, err := fs.Stat(fsys, "cue.mod/module.cue"); err != nil {
		return nil, fmt.Errorf("template module: cue.mod/module.cue not found: %w", err)
	}
	dirs, err := kindDirs(fsys)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, errors.New("template module: no kind found (a kind is a directory with an api/ package)")
	}
	digest, err := DigestFS(fsys)
	if err != nil {
		return nil, err
	}

	// A template evaluates with no access to the network or the host: module
	// dependencies are refused and @embed only reads inside the module.
	// What the loader reads is what a worker process loads again.
	recorded := newRecordingFS(fsys)
	cfg := &load.Config{FS: recorded, Dir: "/", ModuleRoot: "/", Registry: noRegistry{}}
	args := make([]string, 0, 2*len(dirs))
	for _, d := range dirs {
		args = append(args, "./"+d, "./"+d+"/api")
	}
	insts := load.Instances(args, cfg)
	ctx := cuecontext.New(cuecontext.Interpreter(embed.New()))

	lib := &Library{byGK: map[schema.GroupKind]*Kind{}, digest: digest}
	for i, d := range dirs {
		tmpl, err := build1(ctx, insts[2*i])
		if err != nil {
			return nil, fmt.Errorf("kind %s: template: %w", d, err)
		}
		api, err := build1(ctx, insts[2*i+1])
		if err != nil {
			return nil, fmt.Errorf("kind %s: api: %w", d, err)
		}
		k, err := newKind(d, api, tmpl)
		if err != nil {
			return nil, fmt.Errorf("kind %s: %w", d, err)
		}
		k.observed = observedUseOf(insts[2*i])
		if err := checkStatus(api); err != nil {
			return nil, fmt.Errorf("kind %s: %w", d, err)
		}
		if err := k.checkRandom(); err != nil {
			return nil, fmt.Errorf("kind %s: %w", d, err)
		}
		if err := k.checkScale(); err != nil {
			return nil, fmt.Errorf("kind %s: %w", d, err)
		}
		if err := k.loadRoleRules(); err != nil {
			return nil, fmt.Errorf("kind %s: %w", d, err)
		}
		if other, dup := lib.byGK[k.GVK.GroupKind()]; dup {
			return nil, fmt.Errorf("kind %s: %s is already defined by %s", d, k.GVK.GroupKind(), other.Dir)
		}
		lib.byGK[k.GVK.GroupKind()] = k
		lib.kinds = append(lib.kinds, k)
	}
	var files map[string][]byte
	if !o.inProcess {
		files = recorded.Files()
	}
	lib.env = newEnvironment(o, files)
	for _, k := range lib.kinds {
		k.env = lib.env
	}
	// Once neither the library nor any of its kinds can render, its
	// workers go.
	runtime.AddCleanup(lib.env, func(eval evaluator) { eval.close() }, lib.env.eval)
	sort.Slice(lib.kinds, func(i, j int) bool {
		a, b := lib.kinds[i].GVK, lib.kinds[j].GVK
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Kind < b.Kind
	})
	return lib, nil
}

func build1(ctx *cue.Context, inst *build.Instance) (cue.Value, error) {
	if inst.Err != nil {
		return cue.Value{}, Diagnose(inst.Err)
	}
	if err := refuseTools(inst); err != nil {
		return cue.Value{}, err
	}
	v := ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return cue.Value{}, Diagnose(err)
	}
	return v, nil
}

// refuseTools rejects the tool/ packages (exec, file, http, os) anywhere in
// a template's imports: they describe commands for `cue cmd`, and have no
// place in a template that must only compute objects.
func refuseTools(inst *build.Instance) error {
	for _, path := range append(inst.ImportPaths, inst.Deps...) {
		if path == "tool" || strings.HasPrefix(path, "tool/") {
			return fmt.Errorf("%s imports %q: templates may not use the tool packages", inst.ImportPath, path)
		}
	}
	return nil
}

// kindDirs lists the top-level directories that have an api/ package; fsys
// shows links as what they point to.
func kindDirs(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("template module: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "cue.mod" || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := fs.Stat(fsys, path.Join(e.Name(), "api")); err == nil && fi.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// DigestFS hashes every file name and content, so that a changed template
// shows as a changed digest. Links are followed as Load follows them, so a
// swap of a mounted ConfigMap's `..data` changes the digest; a link Load
// would refuse is hashed as its target, so that the load that follows
// reports it.
func DigestFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := walkModule(fsys, func(p, target string, content []byte) error {
		if content == nil {
			fmt.Fprintf(h, "%s\x00->\x00%s\x00", p, target)
			return nil
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(content))
		h.Write(content)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("template module: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ModuleFiles returns the content of every file of the module in fsys by
// path, with links followed as Load follows them. A link Load would refuse
// is an error.
func ModuleFiles(fsys fs.FS) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := walkModule(fsys, func(p, target string, content []byte) error {
		if content == nil {
			if _, err := fs.Stat(followLinks(fsys), p); err != nil {
				return fmt.Errorf("template module: %w", err)
			}
			return fmt.Errorf("template module: %s is a link to %s, a directory already in the module", p, target)
		}
		files[p] = content
		return nil
	})
	return files, err
}

// walkModule calls visit with every file of the module and its content, or
// with a link that is not followed and its target (content nil): one that
// cannot be, or one to a directory already walked (a cycle). The
// kubelet's own `..` entries at the top are left out: the top-level links
// reach their content.
func walkModule(fsys fs.FS, visit func(p, target string, content []byte) error) error {
	fsys = followLinks(fsys)
	linked, _ := fsys.(linkedFS)
	walked := map[string]bool{}
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && path.Dir(p) == "." && strings.HasPrefix(p, "..") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if linked.base == nil {
				return nil
			}
			dir, err := linked.resolve("walk", p)
			if err != nil {
				return err
			}
			if walked[dir] {
				if err := visit(p, dir, nil); err != nil {
					return err
				}
				return fs.SkipDir
			}
			walked[dir] = true
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return visit(p, linked.linkTarget(p), nil)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if b == nil {
			b = []byte{}
		}
		return visit(p, "", b)
	})
}

// noRegistry refuses every module dependency: templates must be
// self-contained, and loading them must never reach the network.
type noRegistry struct{}

var errNoRegistry = errors.New("template modules cannot depend on other CUE modules")

func (noRegistry) ModFile(context.Context, module.Version) (*modfile.File, error) {
	return nil, errNoRegistry
}
func (noRegistry) Fetch(context.Context, module.Version) (module.SourceLoc, error) {
	return module.SourceLoc{}, errNoRegistry
}
func (noRegistry) ModuleVersions(context.Context, string) ([]string, error) {
	return nil, errNoRegistry
}
