package main

import (
	"fmt"
	"os"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// loadLibrary loads the template module in dir, or the built-in one. The
// directory is opened as an os.Root, so that no file outside it is read
// even if a link changes while it loads.
func loadLibrary(dir string) (*render.Library, error) {
	if dir == "" {
		return render.Load(schemas.FS)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--templates: %w", err)
	}
	defer root.Close()
	return render.Load(root.FS())
}
