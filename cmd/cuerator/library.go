package main

import (
	"os"

	"github.com/cuerator/cuerator/engine"
	"github.com/cuerator/cuerator/schemas"
)

// loadLibrary loads the template module in dir, or the built-in one.
func loadLibrary(dir string) (*engine.Library, error) {
	if dir == "" {
		return engine.Load(schemas.FS)
	}
	return engine.Load(os.DirFS(dir))
}
