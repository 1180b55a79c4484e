package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// RestartAPIServer kills kube-apiserver and starts it again with flags
// changed: a value sets the flag, "" takes it back to its default. The
// flags stay until the next RestartAPIServer changes them.
func (c *Cluster) RestartAPIServer(flags map[string]string) error {
	if c.env == nil {
		return errors.New("the API server was not started by this package (CUERATOR_TEST_KUBECONFIG?)")
	}
	if err := c.KillAPIServer(); err != nil {
		return err
	}
	args := c.env.ControlPlane.APIServer.Configure()
	for name, value := range flags {
		if value == "" {
			args.Disable(name)
		} else {
			args.Set(name, value)
		}
	}
	return c.StartAPIServer()
}

// CompactEtcd compacts etcd's history up to its current revision, as the
// API server's periodic compaction does, and returns that revision: a watch
// that resumes from an older resource version than it is told it expired
// (410 Gone) and must list again.
func (c *Cluster) CompactEtcd() (int64, error) {
	if c.EtcdURL == "" {
		return 0, errors.New("etcd was not started by this package (CUERATOR_TEST_KUBECONFIG?)")
	}
	// A range of one key answers with the store's revision in its header.
	var status struct {
		Header struct {
			Revision int64 `json:"revision,string"`
		} `json:"header"`
	}
	if err := c.etcdCall("/v3/kv/range", map[string]any{"key": base64.StdEncoding.EncodeToString([]byte("/registry/")), "limit": 1}, &status); err != nil {
		return 0, err
	}
	rev := status.Header.Revision
	if err := c.etcdCall("/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(rev, 10)}, nil); err != nil {
		// A compaction to a revision already compacted is no fault.
		if !strings.Contains(err.Error(), "required revision has been compacted") {
			return 0, err
		}
	}
	return rev, nil
}

// etcdCall posts request to etcd's JSON gateway and decodes the answer into
// out, unless out is nil.
func (c *Cluster) etcdCall(path string, request, out any) error {
	body, err := json.Marshal(request)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.EtcdURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s: %s", path, resp.Status, answer)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("etcd %s: %w: %s", path, err, answer)
	}
	return nil
}
