package cluster

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// KillAPIServer kills kube-apiserver with SIGKILL, as a crash or an OOM kill
// would, and returns once it is gone. etcd and every other component keep
// running; StartAPIServer brings it back.
func (c *Cluster) KillAPIServer() error {
	p, err := c.apiServerProc()
	if err != nil {
		return err
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver (pid %d): %w", p.pid, err)
	}
	for deadline := time.Now().Add(stopGrace); running(p.pid, p.exe); {
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) survived SIGKILL", p.pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after KillAPIServer: the same
// address, certificates and etcd, so clients reconnect with the credentials
// they have. It returns once the server reports healthy.
func (c *Cluster) StartAPIServer() error {
	p, err := c.apiServerProc()
	if err != nil {
		return err
	}
	if running(p.pid, p.exe) {
		return fmt.Errorf("kube-apiserver (pid %d) is still running", p.pid)
	}
	api := c.env.ControlPlane.APIServer
	// envtest keeps the serving certificate and the client CA of a fixed
	// CertDir, so the kubeconfig written at start stays valid.
	if err := api.Start(); err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w%s", err, logTail(p.name, p.logPath))
	}
	pid := findProcess(p.exe, "--cert-dir="+api.CertDir)
	if pid == 0 {
		return errors.New("kube-apiserver restarted but its process is not found")
	}
	p.pid = pid
	return c.writeState()
}

func (c *Cluster) apiServerProc() (*proc, error) {
	if c.env == nil {
		return nil, errors.New("the API server was not started by this package (CUERATOR_TEST_KUBECONFIG?)")
	}
	for _, p := range c.procs {
		if p.name == "kube-apiserver" {
			return p, nil
		}
	}
	return nil, errors.New("kube-apiserver process not found")
}
