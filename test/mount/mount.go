// Package mount lays out a directory as the kubelet mounts a ConfigMap or a
// projected volume, and updates it as the kubelet does, so that tests read
// templates from the layout the operator meets in a pod.
//
// The kubelet writes the files into a new timestamped directory
// (`..2026_12_01_10_00_00.123456789`), points the link `..data` at it with
// an atomic rename, links every top-level entry (`name -> ..data/name`),
// then removes the previous directory and the links of entries that are
// gone.
package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const dataLink = "..data"

// Write makes dir hold files (by slash-separated path) as a mounted volume
// does, replacing what an earlier Write put there with one atomic swap of
// `..data`.
func Write(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	previous, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	stamped, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	top := map[string]bool{}
	for name, content := range files {
		if !fs.ValidPath(name) || strings.HasPrefix(name, "..") {
			return fmt.Errorf("mount: invalid path %q", name)
		}
		path := filepath.Join(stamped, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		top[strings.SplitN(name, "/", 2)[0]] = true
	}
	// The swap: a new link renamed over the old one.
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(stamped), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
			return err
		}
	}
	if previous != "" {
		if err := os.RemoveAll(filepath.Join(dir, previous)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// Files reads every file of fsys, by path, as Write takes them.
func Files(fsys fs.FS) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		files[path] = b
		return err
	})
	return files, err
}
