// Package cluster runs a small but real Kubernetes control plane on this
// machine for tests and demos: etcd and kube-apiserver (through envtest),
// kube-controller-manager, kube-scheduler, and kwok simulating one node, so
// Deployments, StatefulSets, Jobs and garbage collection behave as in a real
// cluster while no container ever runs. Every process listens on 127.0.0.1
// only. The binaries come from test/tools/build.sh (make cluster-tools);
// nothing is downloaded.
//
// Processes are identified through /proc, so stray-process cleanup needs
// Linux.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

const (
	// NodeName is the simulated node that ordinary pods are scheduled onto.
	NodeName = "kwok-node-0"

	// EnvBinDir overrides where the cluster binaries are looked up.
	EnvBinDir = "CUERATOR_CLUSTER_BIN"
	// EnvTestKubeconfig makes Main use an already running cluster.
	EnvTestKubeconfig = "CUERATOR_TEST_KUBECONFIG"

	modulePath    = "github.com/cuerator/cuerator"
	kwokNodeKey   = "kwok.x-k8s.io/node"
	defaultSCKey  = "storageclass.kubernetes.io/is-default-class"
	stateFile     = "pids.json"
	tempDirPrefix = "cuerator-cluster-"

	startTimeout = 3 * time.Minute
	stopGrace    = 15 * time.Second
	pollInterval = 250 * time.Millisecond
)

// Options configures Start. The zero value is valid.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kwok and kwok-stages/. Default: $CUERATOR_CLUSTER_BIN,
	// else bin/cluster in the repository root.
	BinDir string
	// DataDir receives etcd data, certificates, the kubeconfig and logs/.
	// Default: a temporary directory that Stop removes. A given DataDir is
	// kept, and a later Start reuses its etcd data.
	DataDir string
	// Logs, if set, also receives every component's output, each line
	// prefixed with the component name. DataDir/logs/<name>.log is always
	// written.
	Logs io.Writer
}

// Cluster is a running local cluster.
type Cluster struct {
	// Config is an admin (group system:masters) client config.
	Config *rest.Config
	// KubeconfigPath is a kubeconfig file with the same identity, for kubectl.
	// Start writes it (to DataDir/kubeconfig) only once the cluster is ready.
	KubeconfigPath string
	// DataDir is where data, certificates and logs live; empty when the
	// cluster was not started by this package.
	DataDir string
	// EtcdURL is etcd's client URL (plain HTTP on loopback), for tests that
	// check what the API server stored; empty when the cluster was not
	// started by this package.
	EtcdURL string

	binDir        string
	removeDataDir bool
	env           *envtest.Environment
	procs         []*proc
	logs          io.Writer
	logsMu        sync.Mutex
	logFiles      []*os.File

	stopOnce sync.Once
	stopErr  error
}

// proc is one component process. cmd is nil for etcd and kube-apiserver,
// which envtest starts and stops.
type proc struct {
	name    string
	pid     int
	exe     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error         // cmd's exit status, set before done is closed
}

// state is written to DataDir so that Down and later Starts can find (and
// clean up after) the processes of a cluster whose owner died.
type state struct {
	Owner     int         `json:"owner"`
	OwnerExe  string      `json:"ownerExe"`
	Processes []stateProc `json:"processes"`
}

type stateProc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Exe  string `json:"exe"`
}

// Start starts a cluster and returns once the API server answers, the node
// is Ready, the controller-manager has created the default ServiceAccount and
// a default StorageClass exists. On error, everything started is stopped
// again. Start gives up after 3 minutes unless ctx ends sooner.
func Start(ctx context.Context, opts Options) (_ *Cluster, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{binDir: binDir, logs: opts.Logs}

	// Clusters of test binaries that died (e.g. on -timeout) leave processes
	// that nothing else would ever stop.
	reapStaleTempClusters()

	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", tempDirPrefix)
		if err != nil {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
		c.DataDir, c.removeDataDir = dir, true
	} else {
		dir, err := filepath.Abs(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data dir %q: %w", opts.DataDir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
		owner, err := reap(dir)
		if err != nil {
			return nil, err
		}
		if owner != 0 {
			return nil, fmt.Errorf("a cluster is already running in %s (pid %d)", dir, owner)
		}
		c.DataDir = dir
	}
	defer func() {
		if retErr != nil {
			if err := c.Stop(); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cleaning up: %w", err))
			}
		}
	}()

	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	certDir := filepath.Join(c.DataDir, "certs")
	// Certificates are made anew on every start: envtest cannot reuse them.
	if err := os.RemoveAll(certDir); err != nil {
		return fmt.Errorf("removing old certificates: %w", err)
	}
	for _, d := range []string{certDir, filepath.Join(c.DataDir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	// etcd warns about a data directory others can read.
	if err := os.MkdirAll(filepath.Join(c.DataDir, "etcd"), 0o700); err != nil {
		return fmt.Errorf("creating etcd data dir: %w", err)
	}
	// A kubeconfig left from an earlier run would point at a dead port.
	if err := os.Remove(filepath.Join(c.DataDir, "kubeconfig")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing old kubeconfig: %w", err)
	}
	if err := c.writeState(); err != nil {
		return err
	}

	if err := c.startControlPlane(ctx, certDir); err != nil {
		return err
	}
	c.Config = c.env.Config

	caFile := filepath.Join(certDir, "ca.crt")
	if err := os.WriteFile(caFile, c.env.ControlPlane.APIServer.SecureServing.CA, 0o644); err != nil {
		return fmt.Errorf("writing API server CA: %w", err)
	}
	kubeconfig := filepath.Join(certDir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, c.env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}

	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	stages, storageClass, err := readKwokStages(filepath.Join(c.binDir, "kwok-stages"))
	if err != nil {
		return err
	}

	kcmPort, err := freePort()
	if err != nil {
		return err
	}
	schedPort, err := freePort()
	if err != nil {
		return err
	}
	authArgs := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		// The API server has no request-header CA; without this, both log an
		// error about it every few seconds.
		"--authentication-skip-lookup=true",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
	}
	saKey := filepath.Join(certDir, "sa-signer.key") // written by envtest's APIServer
	if _, err := os.Stat(saKey); err != nil {
		return fmt.Errorf("service account signing key from envtest: %w", err)
	}
	if err := c.startProcess("kube-controller-manager", slices.Concat(authArgs, []string{
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--cert-dir=" + filepath.Join(certDir, "kube-controller-manager"),
		"--controllers=*",
		// kwok refreshes the node's status every 20-45 s; on a loaded
		// 2-core machine a late refresh must not make the node controller
		// mark the node NotReady and its pods unready, which kwok never
		// undoes.
		"--node-monitor-grace-period=5m",
		// The default client limit (20 requests/s) would make the
		// Deployment and ReplicaSet controllers, not the operator under
		// test, decide how fast hundreds of CRs become Ready.
		"--kube-api-qps=300",
		"--kube-api-burst=600",
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + caFile,
	}), nil); err != nil {
		return err
	}
	if err := c.startProcess("kube-scheduler", slices.Concat(authArgs, []string{
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--cert-dir=" + filepath.Join(certDir, "kube-scheduler"),
		// As for the controller-manager: binding pods is not what is measured.
		"--kube-api-qps=300",
		"--kube-api-burst=600",
	}), nil); err != nil {
		return err
	}
	kwokArgs := []string{
		"--kubeconfig=" + kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeKey + "=fake",
		// kwok's default pod CIDR is envtest's service range.
		"--cidr=10.244.0.0/16",
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	// kwok also loads ~/.kwok/kwok.yaml if it exists; a private HOME keeps
	// the developer's own kwok setup out.
	kwokHome := filepath.Join(c.DataDir, "kwok-home")
	if err := os.MkdirAll(kwokHome, 0o755); err != nil {
		return fmt.Errorf("creating kwok home: %w", err)
	}
	if err := c.startProcess("kwok", kwokArgs, append(os.Environ(), "HOME="+kwokHome)); err != nil {
		return err
	}

	if err := ensureStorageClass(ctx, cs, storageClass); err != nil {
		return err
	}
	if err := ensureNode(ctx, cs); err != nil {
		return err
	}

	// The components serve self-signed certificates; the probe only asks
	// whether they are up.
	probe := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer probe.CloseIdleConnections()
	if err := c.waitFor(ctx, "kube-controller-manager /healthz", healthz(probe, kcmPort)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-scheduler /healthz", healthz(probe, schedPort)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "node "+NodeName+" Ready", nodeReady(cs)); err != nil {
		return err
	}
	// The ServiceAccount admission plugin is on, so pods need this; it also
	// shows that the controller-manager's controllers run.
	if err := c.waitFor(ctx, "ServiceAccount default/default", func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "a default StorageClass", defaultStorageClass(cs)); err != nil {
		return err
	}

	// Written last, so that its existence means the cluster is ready.
	c.KubeconfigPath = filepath.Join(c.DataDir, "kubeconfig")
	if err := writeFileAtomic(c.KubeconfigPath, c.env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// startControlPlane runs etcd and kube-apiserver through envtest.
func (c *Cluster) startControlPlane(ctx context.Context, certDir string) error {
	etcdPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	etcdLog, err := c.logWriter("etcd")
	if err != nil {
		return err
	}
	apiLog, err := c.logWriter("kube-apiserver")
	if err != nil {
		return err
	}

	etcd := &envtest.Etcd{
		// Set explicitly so that KUBEBUILDER_ASSETS cannot swap in other binaries.
		Path:    c.binary("etcd"),
		DataDir: filepath.Join(c.DataDir, "etcd"),
		URL:     &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdPort))},
		Out:     etcdLog,
		Err:     etcdLog,
	}
	etcd.Configure().Set("listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	c.EtcdURL = etcd.URL.String()

	api := &envtest.APIServer{
		Path:    c.binary("kube-apiserver"),
		CertDir: certDir,
		Out:     apiLog,
		Err:     apiLog,
	}
	api.SecureServing.ListenAddr = envtest.ListenAddr{Address: "127.0.0.1", Port: strconv.Itoa(apiPort)}
	// envtest turns the ServiceAccount admission plugin off because it runs
	// no controller-manager; this cluster has one, so keep the real defaults.
	api.Configure().Disable("disable-admission-plugins")
	// envtest's 10.0.0.0/24 holds 254 Services; the benchmarks run
	// thousands. kwok's pod CIDR (below) stays outside it.
	api.Configure().Set("service-cluster-ip-range", "10.0.0.0/16")

	timeout := time.Minute
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	c.env = &envtest.Environment{
		ControlPlane:             envtest.ControlPlane{Etcd: etcd, APIServer: api},
		BinaryAssetsDirectory:    c.binDir,
		UseExistingCluster:       ptr.To(false),
		ControlPlaneStartTimeout: timeout,
		ControlPlaneStopTimeout:  stopGrace,
	}
	if _, err := c.env.Start(); err != nil {
		// envtest's errors name the process that failed; show only its log.
		var tails string
		for _, name := range []string{"etcd", "kube-apiserver"} {
			if strings.Contains(err.Error(), name) {
				tails += logTail(name, c.logPath(name))
			}
		}
		return fmt.Errorf("starting etcd and kube-apiserver: %w%s", err, tails)
	}
	// envtest does not expose its processes; find them so that Stop and Down
	// can make sure they are gone.
	for name, arg := range map[string]string{
		"etcd":           "--data-dir=" + etcd.DataDir,
		"kube-apiserver": "--cert-dir=" + certDir,
	} {
		exe := c.binary(name)
		if pid := findProcess(exe, arg); pid != 0 {
			c.procs = append(c.procs, &proc{name: name, pid: pid, exe: exe, logPath: c.logPath(name)})
		}
	}
	return c.writeState()
}

// startProcess starts a component in its own process group (so Stop can
// signal all of it) with its output going to its log.
func (c *Cluster) startProcess(name string, args, env []string) error {
	out, err := c.logWriter(name)
	if err != nil {
		return err
	}
	exe := c.binary(name)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, pid: cmd.Process.Pid, exe: exe, logPath: c.logPath(name), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return c.writeState()
}

// binary returns the path of a component binary with symlinks resolved,
// because processes are recognised by /proc/<pid>/exe.
func (c *Cluster) binary(name string) string {
	p := filepath.Join(c.binDir, name)
	if resolved, err := filepath.EvalSymlinks(p); err == nil {
		return resolved
	}
	return p
}

func (c *Cluster) logPath(name string) string {
	return filepath.Join(c.DataDir, "logs", name+".log")
}

func (c *Cluster) logWriter(name string) (io.Writer, error) {
	f, err := os.OpenFile(c.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating log for %s: %w", name, err)
	}
	c.logFiles = append(c.logFiles, f)
	if c.logs == nil {
		return f, nil
	}
	return io.MultiWriter(f, &prefixWriter{mu: &c.logsMu, w: c.logs, prefix: "[" + name + "] "}), nil
}

// waitFor polls cond until it returns nil. It fails early when a component
// has exited, and reports cond's last error on timeout.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if err := c.checkProcesses(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		last := cond(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// checkProcesses returns an error with the log tail of the first component
// that is no longer running.
func (c *Cluster) checkProcesses() error {
	for _, p := range c.procs {
		if p.exited() {
			status := "exited"
			if p.cmd != nil && p.waitErr != nil {
				status = "exited: " + p.waitErr.Error()
			}
			return fmt.Errorf("%s %s%s", p.name, status, logTail(p.name, p.logPath))
		}
	}
	return nil
}

func (p *proc) exited() bool {
	if p.cmd == nil {
		return !running(p.pid, p.exe)
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends a process started by startProcess: SIGTERM, then SIGKILL to its
// whole process group.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s did not stop within %s and was killed", p.name, stopGrace)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, p.pid)
	}
}

// Stop stops every process the cluster started and removes the data
// directory if Start created it. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	if c.DataDir == "" {
		return nil // not started by this package
	}
	var errs []error
	// Clients first, so they do not log errors about a vanished API server.
	for i := len(c.procs) - 1; i >= 0; i-- {
		if p := c.procs[i]; p.cmd != nil {
			errs = append(errs, p.stop())
		}
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping etcd and kube-apiserver: %w", err))
		}
	}
	// envtest returns after its stop timeout without waiting for the kill.
	for _, p := range c.procs {
		if p.cmd == nil && running(p.pid, p.exe) {
			errs = append(errs, killGroup(p.pid, p.exe, p.name))
		}
	}
	for _, f := range c.logFiles {
		_ = f.Close()
	}
	if c.removeDataDir {
		if err := os.RemoveAll(c.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("removing data dir: %w", err))
		}
	} else {
		// The kubeconfig goes too: its existence means the cluster is up.
		for _, name := range []string{stateFile, "kubeconfig"} {
			if err := os.Remove(filepath.Join(c.DataDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PIDs returns the process ids of the components by name (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok); empty for a
// cluster this package did not start.
func (c *Cluster) PIDs() map[string]int {
	pids := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		pids[p.name] = p.pid
	}
	return pids
}

func (c *Cluster) writeState() error {
	owner, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own executable: %w", err)
	}
	s := state{Owner: os.Getpid(), OwnerExe: owner, Processes: []stateProc{}}
	for _, p := range c.procs {
		s.Processes = append(s.Processes, stateProc{Name: p.name, PID: p.pid, Exe: p.exe})
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", stateFile, err)
	}
	if err := writeFileAtomic(filepath.Join(c.DataDir, stateFile), b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", stateFile, err)
	}
	return nil
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading cluster state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// reap stops the leftover processes of a cluster in dir whose owner is gone.
// If the owner still runs, reap leaves everything alone and returns its pid.
func reap(dir string) (owner int, err error) {
	s, err := readState(dir)
	if err != nil || s == nil {
		return 0, err
	}
	if running(s.Owner, s.OwnerExe) {
		return s.Owner, nil
	}
	var errs []error
	// Reverse start order: the API server stops slowly once etcd is gone.
	for i := len(s.Processes) - 1; i >= 0; i-- {
		if p := s.Processes[i]; running(p.PID, p.Exe) {
			errs = append(errs, killGroup(p.PID, p.Exe, p.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("stopping leftover processes in %s: %w", dir, err)
	}
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("removing %s: %w", stateFile, err)
	}
	return 0, nil
}

// reapStaleTempClusters removes temporary clusters whose owner died. Errors
// are ignored: a stale cluster must not stop a new one from starting.
func reapStaleTempClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	for _, dir := range dirs {
		// A directory without state may belong to a Start that is just
		// beginning; leave it.
		if s, err := readState(dir); err != nil || s == nil {
			continue
		}
		if owner, err := reap(dir); err == nil && owner == 0 {
			_ = os.RemoveAll(dir)
		}
	}
}

// killGroup terminates a process we did not (or no longer) wait for, and its
// process group, then waits until it is gone.
func killGroup(pid int, exe, name string) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = syscall.Kill(-pid, sig)
		_ = syscall.Kill(pid, sig) // in case it left its group
		deadline := time.Now().Add(stopGrace)
		for time.Now().Before(deadline) {
			if !running(pid, exe) {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("%s (pid %d) survived SIGKILL", name, pid)
}

// running reports whether pid is a live (not zombie) process executing exe.
// Checking the executable keeps a reused pid from being mistaken for ours.
func running(pid int, exe string) bool {
	if pid <= 0 {
		return false
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	// A binary rebuilt while running shows as "<path> (deleted)".
	return strings.TrimSuffix(link, " (deleted)") == exe
}

// findProcess returns the pid of the process running exe with the argument
// arg, or 0.
func findProcess(exe, arg string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !running(pid, exe) {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			return pid
		}
	}
	return 0
}

// Up starts a cluster, calls ready, and keeps it running until ctx ends or a
// component dies; then it stops the cluster. It is what `localcluster up`
// runs in the foreground.
func Up(ctx context.Context, opts Options, ready func(*Cluster)) error {
	c, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	ready(c)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return c.Stop()
		case <-tick.C:
			if err := c.checkProcesses(); err != nil {
				return errors.Join(err, c.Stop())
			}
		}
	}
}

// Down stops the cluster that Up runs in dir (asking its process to stop,
// then killing whatever is left) and removes dir.
func Down(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Refuse to delete a directory that does not look like a cluster's.
	if !exists(filepath.Join(dir, stateFile)) && !exists(filepath.Join(dir, "etcd")) &&
		!exists(filepath.Join(dir, "localcluster.log")) {
		return fmt.Errorf("%s does not look like a cluster data directory; not removing it", dir)
	}
	s, err := readState(dir)
	if err != nil {
		return err
	}
	if s != nil && running(s.Owner, s.OwnerExe) {
		// The owner stops its own cluster on SIGTERM; that is the clean path.
		if err := syscall.Kill(s.Owner, syscall.SIGTERM); err != nil {
			return fmt.Errorf("signalling cluster process %d: %w", s.Owner, err)
		}
		for running(s.Owner, s.OwnerExe) {
			select {
			case <-ctx.Done():
				_ = syscall.Kill(s.Owner, syscall.SIGKILL)
				return fmt.Errorf("cluster process %d did not stop: %w", s.Owner, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if _, err := reap(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// Main runs a test binary's tests against one cluster: the one whose
// kubeconfig is in $CUERATOR_TEST_KUBECONFIG, else a new one that is stopped
// when the tests end. setup (may be nil) runs before the tests, e.g. to
// install CRDs and start an operator; an error from it fails the run, and the
// stop function it returns (may be nil) runs after the tests, before the
// cluster stops:
//
//	func TestMain(m *testing.M) {
//		os.Exit(cluster.Main(m, func(c *cluster.Cluster) (func(), error) {
//			testCluster = c
//			return nil, nil
//		}))
//	}
func Main(m *testing.M, setup func(*Cluster) (stop func(), err error)) int {
	// The components run in their own process groups, so Ctrl-C reaches only
	// this process: it must stop them before dying.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	var (
		c   *Cluster
		err error
	)
	if path := os.Getenv(EnvTestKubeconfig); path != "" {
		c, err = connect(path)
	} else {
		c, err = Start(ctx, Options{})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "test cluster: %v\n", err)
		return 1
	}
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "test cluster: %v\n", err)
			}
			os.Exit(130)
		case <-finished:
		}
	}()
	code := runTests(m, c, setup)
	close(finished)
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "test cluster: stopping: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func runTests(m *testing.M, c *Cluster, setup func(*Cluster) (func(), error)) int {
	if setup != nil {
		stop, err := setup(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "test setup: %v\n", err)
			return 1
		}
		if stop != nil {
			defer stop()
		}
	}
	return m.Run()
}

// connect returns a Cluster for an existing cluster; its Stop does nothing.
func connect(kubeconfig string) (*Cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("cluster in %s does not answer: %w", kubeconfig, err)
	}
	abs, err := filepath.Abs(kubeconfig)
	if err != nil {
		return nil, err
	}
	return &Cluster{Config: cfg, KubeconfigPath: abs}, nil
}

// resolveBinDir finds the binaries and checks that they are all there.
func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvBinDir)
	}
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("finding cluster binaries (set %s or Options.BinDir): %w", EnvBinDir, err)
		}
		dir = filepath.Join(root, "bin", "cluster")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("cluster binaries incomplete (run `make cluster-tools`): %w", err)
		}
	}
	return dir, nil
}

// repoRoot walks up from the working directory to cuerator's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePathOf(b) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func modulePathOf(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// readKwokStages sorts kwok's YAML files into Stage files for kwok's
// --config and the StorageClass, which goes to the API server.
func readKwokStages(dir string) (stages []string, sc *storagev1.StorageClass, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("reading kwok stage: %w", err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(b, &meta); err != nil {
			return nil, nil, fmt.Errorf("parsing %s: %w", f, err)
		}
		switch meta.Kind {
		case "Stage":
			stages = append(stages, f)
		case "StorageClass":
			sc = &storagev1.StorageClass{}
			if err := yaml.Unmarshal(b, sc); err != nil {
				return nil, nil, fmt.Errorf("parsing %s: %w", f, err)
			}
		default:
			return nil, nil, fmt.Errorf("%s: unexpected kind %q", f, meta.Kind)
		}
	}
	if len(stages) == 0 || sc == nil {
		return nil, nil, fmt.Errorf("%s: want kwok Stage files and a StorageClass (run `make cluster-tools`)", dir)
	}
	return stages, sc, nil
}

func ensureStorageClass(ctx context.Context, cs kubernetes.Interface, sc *storagev1.StorageClass) error {
	if sc.Annotations == nil {
		sc.Annotations = map[string]string{}
	}
	sc.Annotations[defaultSCKey] = "true"
	_, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating StorageClass %s: %w", sc.Name, err)
	}
	return nil
}

func ensureNode(ctx context.Context, cs kubernetes.Interface) error {
	// Room for the benchmarks' tens of thousands of pods, requests included:
	// kwok's pods cost nothing but their API objects.
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("10000"),
		corev1.ResourceMemory: resource.MustParse("64Ti"),
		corev1.ResourcePods:   resource.MustParse("30000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{kwokNodeKey: "fake"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		// kwok keeps the capacity a node was created with.
		Status: corev1.NodeStatus{Capacity: resources, Allocatable: resources},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", NodeName, err)
	}
	return nil
}

func healthz(client *http.Client, port int) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		return nil
	}
}

func nodeReady(cs kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", cond.Status, cond.Message)
			}
		}
		return errors.New("no Ready condition yet")
	}
}

func defaultStorageClass(cs kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		list, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, sc := range list.Items {
			if sc.Annotations[defaultSCKey] == "true" {
				return nil
			}
		}
		return errors.New("none is marked default")
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// logTail formats the last lines of a component log for an error message.
func logTail(name, path string) string {
	const maxBytes, maxLines = 8 << 10, 25
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-maxBytes, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return fmt.Sprintf("\n--- last lines of %s (%s) ---\n%s", name, path, strings.Join(lines, "\n"))
}

// prefixWriter copies whole lines to w, each prefixed with a component name,
// so that several components can share one writer.
type prefixWriter struct {
	mu     *sync.Mutex // shared by all prefixWriters of a cluster
	w      io.Writer
	prefix string
	buf    []byte
}

// Write never fails: a broken log sink must not kill the component writing to it.
func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
