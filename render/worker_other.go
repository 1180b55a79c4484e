//go:build !linux

package render

import "os/exec"

// setWorkerAttrs does nothing here: a worker notices that its parent is
// gone by itself (watchParent).
func setWorkerAttrs(*exec.Cmd) {}
