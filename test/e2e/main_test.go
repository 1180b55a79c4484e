// Package e2e drives cuerator the way a user does: the real kubectl against
// a real API server, with the operator reconciling in the background.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/cuerator/cuerator/controllers"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/cluster"
)

var (
	testCluster *cluster.Cluster
	k8s         client.Client
	// extraStops stop operators that tests start besides the main one.
	extraStops []func()
)

func TestMain(m *testing.M) {
	os.Exit(cluster.Main(m, setup))
}

// setup installs the committed CRDs as `make install` does and starts the
// operator in this process.
func setup(c *cluster.Cluster) (stop func(), err error) {
	testCluster = c
	if out, err := kubectlOut(c.KubeconfigPath, "apply", "--server-side", "-k", "../../deploy/crds/"); err != nil {
		return nil, fmt.Errorf("install CRDs: %v: %s", err, out)
	}
	if out, err := kubectlOut(c.KubeconfigPath, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
		return nil, fmt.Errorf("wait for CRDs: %v: %s", err, out)
	}
	logFile, err := os.CreateTemp("", "cuerator-e2e-operator-*.log")
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "operator log:", logFile.Name())
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))

	lib, err := render.Load(schemas.FS)
	if err != nil {
		return nil, err
	}
	opts := controllers.ManagerOptions{Options: quickReconciles}
	opts.MaxConcurrentReconciles = 4
	op, err := startInProcess(countRequests(c.Config), lib, opts)
	if err != nil {
		return nil, err
	}
	k8s = op.GetClient()
	return func() {
		for _, stop := range extraStops {
			stop()
		}
		if err := op.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "operator:", err)
		}
	}, nil
}

// quickReconciles are the in-process operators' settings: retries within
// seconds, so that a test waits for an outcome, not for a backoff.
var quickReconciles = controllers.Options{
	MaxConcurrentReconciles: 2,
	ReconcileTimeout:        30 * time.Second,
	BackoffMin:              100 * time.Millisecond,
	BackoffMax:              5 * time.Second,
	ConflictRetry:           time.Second,
	TemplatesPoll:           300 * time.Millisecond,
	KindRetry:               time.Second,
	DeletionTimeout:         20 * time.Second,
}

// inProcessOperator is an operator running in the test process.
type inProcessOperator struct {
	ctrl.Manager
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startInProcess starts an operator for lib with cfg's identity, without
// metrics or probes unless opts asks for them.
func startInProcess(cfg *rest.Config, lib *render.Library, opts controllers.ManagerOptions) (*inProcessOperator, error) {
	if opts.MetricsBindAddress == "" {
		opts.MetricsBindAddress = "0"
	}
	if opts.HealthProbeBindAddress == "" {
		opts.HealthProbeBindAddress = "0"
	}
	mgr, err := controllers.NewManager(cfg, lib, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &inProcessOperator{Manager: mgr, cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(ctx) }()
	return op, nil
}

// stop stops the operator, once, and returns what its Start returned.
func (op *inProcessOperator) stop() error {
	op.once.Do(func() {
		op.cancel()
		op.err = <-op.done
	})
	return op.err
}

func kubectlOut(kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kubectl runs the real kubectl against the test cluster and fails the test
// when it fails.
func kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := kubectlOut(testCluster.KubeconfigPath, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlInput runs the real kubectl against the test cluster with stdin.
func kubectlInput(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+testCluster.KubeconfigPath)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectlIn runs kubectl with stdin and fails the test when it fails.
func kubectlIn(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlInput(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlFails runs kubectl expecting it to fail, and returns its output.
func kubectlFails(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlInput(stdin, args...)
	if err == nil {
		t.Fatalf("kubectl %s succeeded, want a rejection:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// longTests reports whether the long cases run (make test-long): more
// rounds of the fault tests.
func longTests() bool { return os.Getenv("CUERATOR_TEST_LONG") != "" }

// eventually polls check until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t testing.TB, name string) string {
	t.Helper()
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", "namespace", name, "--wait=false") })
	return name
}
