// Package templatetest runs the golden tests of a template module
// (`cuerator test`): a CR, what the operator would observe in the cluster,
// and the children and status the template must turn them into. It renders
// offline, with the children checked against the Kubernetes API's schemas
// of their kinds, and compares with the expected files, or rewrites them.
//
// A test is a directory holding cr.yaml:
//
//	cr.yaml         the CR, one document (namespace "default" unless it names one)
//	observed.yaml   optional: what the status projection reads, as the operator
//	                fills it: pods: [{name, phase}], children: {<key>: {status: ...}}
//	children/       the expected children, one file per template key: <key>.yaml
//	status.yaml     the expected projected status (the template's `status`)
//	error.txt       instead of children/ and status.yaml: the expected error
//
// Every output the render produces needs its expected file: a test without
// one fails, and Update writes it. A template's `random` reads RandomText,
// so that expected files do not change from run to run.
package templatetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

// The files of a test.
const (
	CRFile       = "cr.yaml"
	ObservedFile = "observed.yaml"
	ChildrenDir  = "children"
	StatusFile   = "status.yaml"
	ErrorFile    = "error.txt"
)

// RandomText is what a template's `random` reads in a test.
const RandomText = "CUERATORTESTRANDOMTEXT0000"

// Options are the library options a test run renders with: renders in this
// process, children checked offline, random text fixed.
func Options() []render.Option {
	return []render.Option{render.InProcess(), render.CheckChildren(), render.Random(func() string { return RandomText })}
}

// Case is one test: a directory with a cr.yaml.
type Case struct {
	// Name is the directory relative to the root it was found under, with
	// forward slashes (webapp/tls).
	Name string
	Dir  string
}

// Find returns every test under root, in name order: each directory that
// holds a cr.yaml.
func Find(root string) ([]Case, error) {
	var cases []Case
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != CRFile {
			return nil
		}
		dir := filepath.Dir(p)
		name, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		cases = append(cases, Case{Name: filepath.ToSlash(name), Dir: dir})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases, nil
}

// Result is the outcome of one test.
type Result struct {
	Case Case
	// Failures describe each difference from what was expected, with a
	// unified diff where there is one. None: the test passed.
	Failures []string
	// Updated lists the expected files Update wrote or removed.
	Updated []string
	// Unchecked names the children whose kinds have no built-in schema, so
	// that nothing checked them offline ("serviceMonitor
	// (monitoring.coreos.com/v1 ServiceMonitor)").
	Unchecked []string
}

// Passed reports whether the test passed.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// outcome is what the render of a test's CR gave.
type outcome struct {
	children  map[string]*unstructured.Unstructured
	unchecked []string
	status    map[string]any
	err       error
}

// Run runs one test with lib (loaded with Options). With update, the
// expected files are rewritten to what the render gives instead of
// compared. An error is a test that could not run: its cr.yaml or
// observed.yaml does not read.
func Run(lib *render.Library, c Case, update bool) (Result, error) {
	res := Result{Case: c}
	cr, err := readCR(filepath.Join(c.Dir, CRFile))
	if err != nil {
		return res, err
	}
	obs, err := readObserved(filepath.Join(c.Dir, ObservedFile))
	if err != nil {
		return res, err
	}
	got := renderCase(lib, cr, obs)
	for _, key := range got.unchecked {
		obj := got.children[key]
		res.Unchecked = append(res.Unchecked, fmt.Sprintf("%s (%s %s)", key, obj.GetAPIVersion(), obj.GetKind()))
	}
	if update {
		res.Updated, err = write(c.Dir, got)
		return res, err
	}
	res.Failures, err = compare(c.Dir, got)
	return res, err
}

func readCR(path string) (*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := render.ReadManifests(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%s: %d documents, want one CR", path, len(objs))
	}
	if objs[0].GetNamespace() == "" {
		objs[0].SetNamespace("default")
	}
	return objs[0], nil
}

func readObserved(path string) (render.Observed, error) {
	var obs render.Observed
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return obs, nil
	}
	if err != nil {
		return obs, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return obs, fmt.Errorf("%s: %w", path, err)
	}
	var doc struct {
		Pods     []render.ObservedPod `json:"pods"`
		Children json.RawMessage      `json:"children"`
		Inputs   json.RawMessage      `json:"inputs"`
	}
	if err := strictUnmarshal(js, &doc); err != nil {
		return obs, fmt.Errorf("%s: %w (want pods: [{name, phase}], children: {<key>: {metadata, spec, status}} and inputs: {<key>: object or [objects]})", path, err)
	}
	if len(doc.Inputs) > 0 {
		if err := utiljson.Unmarshal(doc.Inputs, &obs.Inputs); err != nil {
			return obs, fmt.Errorf("%s: inputs: %w", path, err)
		}
	}
	obs.Pods = doc.Pods
	if len(doc.Children) > 0 {
		// Numbers as the operator reads them from the cluster: int64.
		if err := utiljson.Unmarshal(doc.Children, &obs.Children); err != nil {
			return obs, fmt.Errorf("%s: children: %w", path, err)
		}
	}
	return obs, nil
}

func renderCase(lib *render.Library, cr *unstructured.Unstructured, obs render.Observed) (out outcome) {
	r, err := lib.RenderCR(cr)
	if err != nil {
		return outcome{err: err}
	}
	if r.PendingInputs && obs.Inputs == nil {
		return outcome{err: r.InputsNeeded()}
	}
	if r.PendingInputs || len(r.Graph) > 0 {
		// As the operator renders: again, with the inputs and the live
		// children, so that children that read them render.
		if err := r.Observe(obs); err != nil {
			return outcome{err: err}
		}
	}
	out.children = map[string]*unstructured.Unstructured{}
	for i, key := range r.Keys {
		out.children[key] = r.Objects[i]
	}
	out.unchecked = r.Unchecked
	out.status, out.err = r.Status(obs)
	return out
}

func strictUnmarshal(js []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// canonical is v as YAML with sorted keys: what expected files hold, and
// what is compared.
func canonical(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return string(b), err
}

// readExpected reads an expected YAML file as canonical YAML; "" and no
// error when it does not exist.
func readExpected(path string) (string, bool, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return "", true, fmt.Errorf("%s: %w", path, err)
	}
	var v any
	if err := utiljson.Unmarshal(js, &v); err != nil {
		return "", true, fmt.Errorf("%s: %w", path, err)
	}
	text, err := canonical(v)
	return text, true, err
}

func diff(name, want, got string) string {
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(want), B: difflib.SplitLines(got),
		FromFile: name + " (expected)", ToFile: name + " (rendered)", Context: 3,
	})
	return d
}

// expectedChildren lists the keys of children/*.yaml.
func expectedChildren(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, ChildrenDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if key, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

func childFile(key string) string { return ChildrenDir + "/" + key + ".yaml" }

// compare lists the differences between the render and the expected files.
func compare(dir string, got outcome) ([]string, error) {
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	wantErr, errExpected, err := readText(filepath.Join(dir, ErrorFile))
	if err != nil {
		return nil, err
	}
	if got.err != nil {
		if !errExpected {
			fail("the render failed: %v", got.err)
			return failures, nil
		}
		if gotErr := strings.TrimSpace(got.err.Error()); gotErr != wantErr {
			fail("the render failed otherwise than %s says:\n%s", ErrorFile, diff(ErrorFile, wantErr+"\n", gotErr+"\n"))
		}
		return failures, nil
	}
	if errExpected {
		fail("the render succeeded; %s expects it to fail with: %s", ErrorFile, wantErr)
	}

	keys, err := expectedChildren(dir)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if got.children[key] == nil {
			fail("%s: the render has no child %s", childFile(key), key)
		}
	}
	for _, key := range slices.Sorted(maps(got.children)) {
		want, ok, err := readExpected(filepath.Join(dir, ChildrenDir, key+".yaml"))
		if err != nil {
			return nil, err
		}
		text, err := canonical(got.children[key].Object)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok:
			fail("%s is missing: the render has a child %s (--update writes it)", childFile(key), key)
		case want != text:
			fail("%s differs:\n%s", childFile(key), diff(childFile(key), want, text))
		}
	}

	want, ok, err := readExpected(filepath.Join(dir, StatusFile))
	if err != nil {
		return nil, err
	}
	switch {
	case got.status == nil && ok:
		fail("%s: the template projects no status", StatusFile)
	case got.status != nil && !ok:
		fail("%s is missing: the template projects a status (--update writes it)", StatusFile)
	case got.status != nil:
		text, err := canonical(got.status)
		if err != nil {
			return nil, err
		}
		if text != want {
			fail("%s differs:\n%s", StatusFile, diff(StatusFile, want, text))
		}
	}
	return failures, nil
}

func maps[V any](m map[string]V) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func readText(path string) (string, bool, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(raw)), true, nil
}

// write makes the expected files say what the render gave, and returns
// those it changed.
func write(dir string, got outcome) ([]string, error) {
	var changed []string
	put := func(name, content string) error {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(path); err == nil && string(old) == content {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		changed = append(changed, name)
		return os.WriteFile(path, []byte(content), 0o644)
	}
	remove := func(name string) error {
		path := filepath.Join(dir, filepath.FromSlash(name))
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil {
			changed = append(changed, name+" (removed)")
		}
		return err
	}
	keys, err := expectedChildren(dir)
	if err != nil {
		return nil, err
	}
	if got.err != nil {
		for _, key := range keys {
			if err := remove(childFile(key)); err != nil {
				return nil, err
			}
		}
		if err := remove(StatusFile); err != nil {
			return nil, err
		}
		return changed, put(ErrorFile, strings.TrimSpace(got.err.Error())+"\n")
	}
	if err := remove(ErrorFile); err != nil {
		return nil, err
	}
	for _, key := range keys {
		if got.children[key] == nil {
			if err := remove(childFile(key)); err != nil {
				return nil, err
			}
		}
	}
	for _, key := range slices.Sorted(maps(got.children)) {
		text, err := canonical(got.children[key].Object)
		if err != nil {
			return nil, err
		}
		if err := put(childFile(key), text); err != nil {
			return nil, err
		}
	}
	if got.status == nil {
		return changed, remove(StatusFile)
	}
	text, err := canonical(got.status)
	if err != nil {
		return nil, err
	}
	return changed, put(StatusFile, text)
}
