package render

import (
	"bytes"
	"io"
	"io/fs"
	"sync"
)

// recordingFS is a module's file system that remembers the content of
// every file read through it: exactly what loading the module read, which
// is what a worker process needs to load it again, identically.
type recordingFS struct {
	base  fs.FS
	mu    sync.Mutex
	files map[string][]byte
}

var _ interface {
	fs.ReadDirFS
	fs.StatFS
	fs.ReadFileFS
} = (*recordingFS)(nil)

func newRecordingFS(base fs.FS) *recordingFS {
	return &recordingFS{base: base, files: map[string][]byte{}}
}

func (r *recordingFS) record(name string, content []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[name] = bytes.Clone(content)
}

// Files returns what was read, by path.
func (r *recordingFS) Files() map[string][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]byte, len(r.files))
	for k, v := range r.files {
		out[k] = v
	}
	return out
}

func (r *recordingFS) Open(name string) (fs.File, error) {
	f, err := r.base.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		return f, err
	}
	defer f.Close()
	content, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	r.record(name, content)
	return &readFile{Reader: bytes.NewReader(content), info: st}, nil
}

func (r *recordingFS) ReadFile(name string) ([]byte, error) {
	content, err := fs.ReadFile(r.base, name)
	if err != nil {
		return nil, err
	}
	r.record(name, content)
	return content, nil
}

func (r *recordingFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(r.base, name) }
func (r *recordingFS) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(r.base, name) }

// readFile is a file read whole.
type readFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (f *readFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *readFile) Close() error               { return nil }
