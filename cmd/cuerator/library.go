package main

import (
	"os"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

// loadLibrary loads the template module in dir, or the built-in one.
func loadLibrary(dir string) (*render.Library, error) {
	if dir == "" {
		return render.Load(schemas.FS)
	}
	return render.Load(os.DirFS(dir))
}
