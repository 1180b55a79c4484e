package render

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// A template directory mounted from a ConfigMap or a projected volume is
// made of symbolic links: each top-level entry points into `..data`, itself
// a link to the timestamped directory the kubelet swaps on an update. The
// module is read through linkedFS, which follows such links as long as they
// stay inside the directory: a template may read no file outside its module.

// maxLinkHops bounds the links one path may go through, as the kernel does,
// so that a cycle of links is an error rather than an endless walk.
const maxLinkHops = 40

var errTooManyLinks = errors.New("too many levels of symbolic links")

// followLinks returns fsys with its symbolic links followed inside it. A
// file system without links (embed.FS) is returned as it is.
func followLinks(fsys fs.FS) fs.FS {
	switch fsys := fsys.(type) {
	case linkedFS:
		return fsys
	case fs.ReadLinkFS:
		return linkedFS{fsys}
	}
	return fsys
}

// linkedFS presents a file system's links as the files and directories they
// point to. A link that leads outside it, or nowhere, stays a link: opening
// it fails and says why.
type linkedFS struct{ base fs.ReadLinkFS }

var _ interface {
	fs.StatFS
	fs.ReadDirFS
	fs.ReadFileFS
} = linkedFS{}

// resolve returns the path of name with every link on its way replaced by
// its target, checked to stay inside the file system.
func (l linkedFS) resolve(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	pending := splitPath(name)
	resolved := "."
	for hops := 0; len(pending) > 0; {
		next := path.Join(resolved, pending[0])
		fi, err := l.base.Lstat(next)
		if err != nil {
			return "", &fs.PathError{Op: op, Path: name, Err: underlying(err)}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved, pending = next, pending[1:]
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", &fs.PathError{Op: op, Path: name, Err: errTooManyLinks}
		}
		target, err := l.base.ReadLink(next)
		if err != nil {
			return "", &fs.PathError{Op: op, Path: name, Err: underlying(err)}
		}
		// A relative target is relative to the link's directory.
		joined := path.Join(resolved, target)
		if path.IsAbs(target) || joined == ".." || strings.HasPrefix(joined, "../") {
			return "", &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("symbolic link %s points to %s, outside the template directory", next, target)}
		}
		// The target may itself go through links: resolve it from the top.
		pending = append(splitPath(joined), pending[1:]...)
		resolved = "."
	}
	return resolved, nil
}

func (l linkedFS) Open(name string) (fs.File, error) {
	p, err := l.resolve("open", name)
	if err != nil {
		return nil, err
	}
	return l.base.Open(p)
}

func (l linkedFS) Stat(name string) (fs.FileInfo, error) {
	p, err := l.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := fs.Stat(l.base, p)
	if err != nil {
		return nil, err
	}
	return namedInfo{fi, path.Base(name)}, nil
}

func (l linkedFS) ReadFile(name string) ([]byte, error) {
	p, err := l.resolve("open", name)
	if err != nil {
		return nil, err
	}
	return fs.ReadFile(l.base, p)
}

// ReadDir lists a directory with each link shown as what it points to,
// under the link's own name.
func (l linkedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := l.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(l.base, p)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if fi, err := l.Stat(path.Join(name, e.Name())); err == nil {
			entries[i] = fs.FileInfoToDirEntry(fi)
		}
	}
	return entries, nil
}

// linkTarget is what the link name points to, or "" if name is no link
// or l is no linkedFS (its zero value).
func (l linkedFS) linkTarget(name string) string {
	if l.base == nil {
		return ""
	}
	dir, err := l.resolve("readlink", path.Dir(name))
	if err != nil {
		return ""
	}
	target, err := l.base.ReadLink(path.Join(dir, path.Base(name)))
	if err != nil {
		return ""
	}
	return target
}

// namedInfo is a link's target described under the link's name.
type namedInfo struct {
	fs.FileInfo
	name string
}

func (i namedInfo) Name() string { return i.name }

func splitPath(p string) []string {
	if p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// underlying keeps the cause of a PathError (fs.ErrNotExist and the like)
// for the PathError that names the path the caller asked for.
func underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
