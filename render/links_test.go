package render_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
)

// The built-in module mounted as the kubelet mounts a ConfigMap: a
// timestamped directory, `..data` pointing at it, every top-level entry a
// link into `..data`.
func mountedSchemas(t *testing.T) (dir string, files map[string][]byte) {
	t.Helper()
	files, err := mount.Files(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"..data", "cue.mod", "memcached"} {
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is not a symbolic link in the mount: %v", name, err)
		}
	}
	return dir, files
}

func kindNames(lib *render.Library) []string {
	var names []string
	for _, k := range lib.Kinds() {
		names = append(names, k.GVK.String())
	}
	return names
}

func TestLoadMountedConfigMap(t *testing.T) {
	dir, files := mountedSchemas(t)
	builtin, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("the mounted module does not load: %v", err)
	}
	if got, want := kindNames(lib), kindNames(builtin); !slices.Equal(got, want) {
		t.Errorf("kinds of the mount %v, want the built-in %v", got, want)
	}
	if lib.Digest() != builtin.Digest() {
		t.Errorf("digest of the mount %s, want the digest of the same files %s", lib.Digest(), builtin.Digest())
	}

	// The kubelet's update: a new timestamped directory, then a swap of
	// `..data`.
	before := lib.Digest()
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if d, err := render.DigestFS(os.DirFS(dir)); err != nil || d != before {
		t.Errorf("the same files mounted again: digest %s (%v), want %s", d, err, before)
	}
	const template = "memcached/memcached.cue"
	files[template] = append(files[template], []byte("\n// changed\n")...)
	if err := mount.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	after, err := render.DigestFS(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Error("a changed template behind a swapped ..data leaves the digest as it was")
	}
	if _, err := render.Load(os.DirFS(dir)); err != nil {
		t.Errorf("the swapped mount does not load: %v", err)
	}
}

// A link may point anywhere inside the template directory, never outside:
// each case would load (and leak the outside file into the module) if its
// link were followed.
func TestLinksOutsideTheModuleRefused(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "extra.cue")
	if err := os.WriteFile(secret, []byte("package x\nleak: \"outside\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	embedding := "@extern(embed)\npackage x\nchildKinds: []\ncr: _\nobjects: {}\nleak: _ @embed(file=\"leak.txt\", type=text)\n"
	for name, tc := range map[string]struct {
		body   string
		links  map[string]string // link path in the module -> target
		reason string
	}{
		"absolute link":        {"package x\nchildKinds: []\ncr: _\nobjects: {}\n", map[string]string{"x/extra.cue": secret}, "outside the template directory"},
		"relative link":        {"package x\nchildKinds: []\ncr: _\nobjects: {}\n", map[string]string{"x/extra.cue": upAndOut(secret)}, "outside the template directory"},
		"link through a link":  {"package x\nchildKinds: []\ncr: _\nobjects: {}\n", map[string]string{"x/extra.cue": "../hop/extra.cue", "hop": upAndOut(outside)}, "outside the template directory"},
		"embed through a link": {embedding, map[string]string{"x/leak.txt": secret}, "outside the template directory"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := moduleWith(t, plainModule, tc.body)
			for link, target := range tc.links {
				if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
					t.Fatal(err)
				}
			}
			lib, err := render.Load(os.DirFS(dir))
			if err == nil {
				t.Fatalf("the module loaded (kinds %v)", kindNames(lib))
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error does not say why: %v", err)
			}
			if strings.Contains(err.Error(), "leak: \"outside\"") {
				t.Errorf("the error shows the outside file's content: %v", err)
			}
		})
	}
}

// A link between two places of the module is followed.
func TestLinkInsideTheModuleFollowed(t *testing.T) {
	dir := moduleWith(t, plainModule, "package x\nchildKinds: []\ncr: _\nobjects: {}\n")
	if err := os.MkdirAll(filepath.Join(dir, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shared", "extra.cue"), []byte("package x\nshared: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared/extra.cue", filepath.Join(dir, "x", "extra.cue")); err != nil {
		t.Fatal(err)
	}
	before, err := render.DigestFS(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := render.Load(os.DirFS(dir)); err != nil {
		t.Fatalf("a link inside the module was refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shared", "extra.cue"), []byte("package x\nshared: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, err := render.DigestFS(os.DirFS(dir)); err != nil || after == before {
		t.Errorf("the digest did not follow the link to a changed file: %s (%v)", after, err)
	}
}

// Links that loop back into a directory are walked once: with two of them,
// following each to the depth the link limit allows would take 2^40 steps.
func TestLinkCyclesWalkedOnce(t *testing.T) {
	dir := moduleWith(t, plainModule, "package x\nchildKinds: []\ncr: _\nobjects: {}\n")
	for _, loop := range []string{"a", "b"} {
		if err := os.Symlink("../x", filepath.Join(dir, "x", loop)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := render.Load(os.DirFS(dir)); err != nil {
		t.Fatalf("a module with link cycles: %v", err)
	}
}

// upAndOut names target by a relative path that climbs out of any
// directory: `..` stops at the file system's root.
func upAndOut(target string) string {
	return strings.Repeat("../", 32) + strings.TrimPrefix(target, "/")
}
