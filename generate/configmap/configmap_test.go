package configmap_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cuerator/cuerator/generate/configmap"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
)

// The kubelet, given the ConfigMap and the volume's items, lays out a
// directory that loads as the module that was packed.
func TestPackedModuleMountsBack(t *testing.T) {
	files, err := render.ModuleFiles(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	m, err := configmap.Pack(files, "templates", "ns")
	if err != nil {
		t.Fatal(err)
	}
	vol := m.Volume("templates")
	mounted := map[string][]byte{}
	for _, item := range vol.Projected.Sources[0].ConfigMap.Items {
		content, ok := m.ConfigMap.Data[item.Key]
		if !ok {
			t.Fatalf("item %s names no key of the ConfigMap", item.Key)
		}
		mounted[item.Path] = []byte(content)
	}
	dir := t.TempDir()
	if err := mount.Write(dir, mounted); err != nil {
		t.Fatal(err)
	}
	got, err := render.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("the mounted ConfigMap does not load: %v", err)
	}
	want, err := render.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != want.Digest() {
		t.Errorf("the mount's digest %s differs from the packed module's %s: a file changed or went missing", got.Digest(), want.Digest())
	}
	var gotKinds, wantKinds []string
	for _, k := range got.Kinds() {
		gotKinds = append(gotKinds, k.GVK.String())
	}
	for _, k := range want.Kinds() {
		wantKinds = append(wantKinds, k.GVK.String())
	}
	if !slices.Equal(gotKinds, wantKinds) {
		t.Errorf("kinds %v, want %v", gotKinds, wantKinds)
	}
}

func TestPackRefusesWhatAConfigMapCannotHold(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string][]byte
		want  string
	}{
		"shared key":  {map[string][]byte{"a/b.cue": nil, "a_b.cue": nil}, "a/b.cue and a_b.cue would share the ConfigMap key a_b.cue"},
		"invalid key": {map[string][]byte{"a/b c.cue": nil}, "template file a/b c.cue: a ConfigMap key holds only"},
		"too big":     {map[string][]byte{"big.yaml": make([]byte, 1<<20)}, "more than a ConfigMap holds"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configmap.Pack(tc.files, "templates", "ns")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A file that is not text survives in binaryData.
func TestPackKeepsBinaryFiles(t *testing.T) {
	m, err := configmap.Pack(map[string][]byte{"kind/logo.png": {0x89, 'P', 'N', 'G', 0xff}}, "templates", "ns")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ConfigMap.BinaryData["kind_logo.png"]; string(got) != "\x89PNG\xff" {
		t.Errorf("binaryData kind_logo.png = %q", got)
	}
}
