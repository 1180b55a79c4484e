package main

import (
	"fmt"
	"os"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// loadLibrary loads the template module in dir, or the built-in one, for a
// command that exits when done: renders evaluate in this process, and one
// over its time budget ends with the command (see render.Budget); children
// are checked offline against their kinds' built-in schemas, as the API
// server would check them.
func loadLibrary(dir string) (*render.Library, error) {
	return load(dir, render.InProcess(), render.CheckChildren())
}

// loadOperatorLibrary loads the template module for the operator: renders
// evaluate in worker processes, killed when they go over their budget.
func loadOperatorLibrary(dir string) (*render.Library, error) {
	return load(dir)
}

// load opens the directory as an os.Root, so that no file outside it is
// read even if a link changes while it loads.
func load(dir string, opts ...render.Option) (*render.Library, error) {
	if dir == "" {
		return render.Load(schemas.FS, opts...)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--templates: %w", err)
	}
	defer root.Close()
	return render.Load(root.FS(), opts...)
}
