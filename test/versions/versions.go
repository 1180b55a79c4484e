// Package versions is the template module of schemas/ with its Memcached
// kind evolved to a second version: v1beta1, which the template renders
// and etcd stores, and v1alpha1, still served and converted through the
// conversions of memcached/api (#Convert). Tests of conversions, CRDs,
// the breaking-change check and the live upgrade load it from here.
package versions

import (
	"embed"
	"io/fs"
	"maps"
	"strings"
	"testing/fstest"

	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
)

//go:embed memcached
var evolved embed.FS

// Files returns the module's files by path: schemas/ with memcached/
// replaced.
func Files() (map[string][]byte, error) {
	files, err := mount.Files(schemas.FS)
	if err != nil {
		return nil, err
	}
	maps.DeleteFunc(files, func(path string, _ []byte) bool { return strings.HasPrefix(path, "memcached/") })
	over, err := mount.Files(evolved)
	if err != nil {
		return nil, err
	}
	maps.Copy(files, over)
	return files, nil
}

// Module returns the module as a file system, as render.Load takes it.
func Module() (fs.FS, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	m := fstest.MapFS{}
	for path, b := range files {
		m[path] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	return m, nil
}
