package render

import (
	"os/exec"
	"syscall"
)

// setWorkerAttrs has the kernel kill a worker when its parent dies, busy or
// not.
func setWorkerAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
