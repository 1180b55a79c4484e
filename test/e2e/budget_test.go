package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The render budget, as the acceptance states it: a CR whose render
// would take minutes (a thousand items, each paired with every other: a
// million keys) leaves the operator ready and other CRs, of its kind and
// another, reconciling, and ends Ready=False naming the budget. The real
// binary runs (cuerator run, renders in worker processes), and the memory
// of its whole process tree is sampled meanwhile.
func TestRenderBudgetStopsARunawayRender(t *testing.T) {
	bin := buildCuerator(t)
	templates, err := filepath.Abs("testdata/budget")
	if err != nil {
		t.Fatal(err)
	}
	installTemplateCRD(t, bin, templates, "pairs.budget.test.cuerator.dev")
	installTemplateCRD(t, bin, templates, "echoes.budget.test.cuerator.dev")
	ns := namespace(t, "render-budget")
	op := startOperator(t, bin, "budget", "--templates", templates, "--watch-namespace", ns)
	memory := sampleTreeRSS(t, op.cmd.Process.Pid)

	applyPairs(t, ns, "runaway", 1000)
	applyPairs(t, ns, "small", 3)
	kubectlIn(t, `{"apiVersion": "budget.test.cuerator.dev/v1", "kind": "Echo", "metadata": {"name": "hello"}, "spec": {"message": "hi"}}`, "apply", "-n", ns, "-f", "-")

	// Meanwhile the others are reconciled.
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pairs/small", "echo/hello", "--timeout=120s")
	if n := strings.Count(kubectl(t, "get", "-n", ns, "configmap/small", "-o", "jsonpath={.data}"), "item-"); n != 2*9 {
		t.Errorf("configmap small holds %d items in its pairs, want 18", n)
	}

	// The runaway ends Stalled, Ready=False, naming the budget.
	kubectl(t, "wait", "-n", ns, "--for=jsonpath={.status.conditions[?(@.type==\"Stalled\")].status}=True", "pairs/runaway", "--timeout=120s")
	ready := kubectl(t, "get", "-n", ns, "pairs/runaway", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}: {.status.conditions[?(@.type=="Ready")].message}`)
	t.Logf("pairs/runaway: Ready=%s", ready)
	if !strings.HasPrefix(ready, "False: ") || !strings.Contains(ready, "render over its") || !(strings.Contains(ready, "time budget") || strings.Contains(ready, "memory budget")) {
		t.Errorf("Ready of the runaway CR does not name the budget: %q", ready)
	}
	if childExists(ns, "configmap", "runaway") {
		t.Error("the runaway CR has a ConfigMap")
	}

	// The operator stayed ready, and reconciles what comes next.
	if status, body, err := httpGet("http://" + op.probes + "/readyz"); err != nil || status != http.StatusOK {
		t.Errorf("/readyz: %d %s %v", status, body, err)
	}
	kubectlIn(t, `{"apiVersion": "budget.test.cuerator.dev/v1", "kind": "Echo", "metadata": {"name": "after"}, "spec": {"message": "still here"}}`, "apply", "-n", ns, "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "echo/after", "--timeout=60s")
	// A spec within reach renders again.
	applyPairs(t, ns, "runaway", 4)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pairs/runaway", "--timeout=60s")

	// What the operator's Deployment allows (deploy/manager: 512Mi), for
	// the operator and its render workers together.
	peak := memory()
	t.Logf("peak RSS of the operator and its render workers together: %d MiB", peak>>20)
	if peak > 512<<20 {
		t.Errorf("the operator's process tree reached %d MiB, above the 512 MiB its Deployment allows", peak>>20)
	}
}

func applyPairs(t *testing.T, ns, name string, n int) {
	t.Helper()
	items := make([]string, n)
	for i := range items {
		items[i] = "item-" + strconv.Itoa(i)
	}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "budget.test.cuerator.dev/v1", "kind": "Pairs",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"items": items},
	})
	if err != nil {
		t.Fatal(err)
	}
	kubectlIn(t, string(b), "apply", "--server-side", "-n", ns, "-f", "-")
}

// sampleTreeRSS samples, every 50 ms until the test ends, the resident
// memory of process pid and its descendants together; the function it
// returns gives the highest sample so far.
func sampleTreeRSS(t *testing.T, pid int) func() int64 {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	var (
		mu   sync.Mutex
		peak int64
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if rss := treeRSS(pid); rss > 0 {
				mu.Lock()
				peak = max(peak, rss)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// treeRSS is the resident memory of pid and its descendants, from /proc.
func treeRSS(pid int) int64 { return treeMemory(pid, "VmRSS:") }

// treeMemory sums the /proc/PID/status field (VmRSS:, RssAnon:) of pid and
// its descendants, in bytes.
func treeMemory(pid int, field string) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(fields[1]); err == nil {
			parent[p] = pp
		}
	}
	inTree := func(p int) bool {
		for i := 0; i < 64 && p > 1; i++ {
			if p == pid {
				return true
			}
			p = parent[p]
		}
		return false
	}
	var total int64
	for p := range parent {
		if !inTree(p) {
			continue
		}
		total += statusBytes(p, field)
	}
	return total
}

// statusBytes reads a /proc/PID/status field given in kB (VmRSS:,
// RssFile:), in bytes; 0 when it cannot.
func statusBytes(pid int, field string) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
