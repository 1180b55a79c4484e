package render

import (
	"container/list"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// A CR's author controls the input of a template that a platform team
// wrote, and CUE's evaluation cannot be interrupted: a comprehension that
// pairs every item of a long list with every other, or a huge string, would
// keep the evaluating process at a full core for minutes and grow its heap
// without limit. Every render therefore runs under a Budget:
//
//   - time: the evaluation (a render, or a status projection) is given up
//     after Budget.Time;
//   - memory: the heap of the process that evaluates;
//   - children and size: the number of children and their size as JSON, as
//     the API server and etcd bound what they store.
//
// The operator evaluates in worker processes (worker.go): one that runs out
// of time or memory is killed, which ends its evaluation and returns its
// memory at once, and at most Workers evaluations run at a time. A process
// that exits anyway (the CLI) evaluates in-process (InProcess): a render
// over its time is abandoned, and at most a few abandoned ones run at once;
// its memory budget is not enforced.
//
// A render over a budget returns a *BudgetError. The same input (kind, CR
// metadata and spec) is not evaluated again: the error is remembered.

// Budget bounds one render. A zero field takes its value from
// DefaultBudget.
type Budget struct {
	// Time bounds one evaluation: a render, or a status projection.
	Time time.Duration `json:"time"`
	// Memory bounds the heap, in bytes, of the worker process that
	// evaluates, the loaded templates included. Not enforced in-process.
	Memory int64 `json:"memory"`
	// Children bounds the number of children of one CR.
	Children int `json:"children"`
	// ChildBytes bounds the size of one child, as JSON.
	ChildBytes int `json:"childBytes"`
	// Bytes bounds the size of all the children of one CR together, as
	// JSON.
	Bytes int `json:"bytes"`
}

// DefaultBudget is what a render may use unless WithBudget says otherwise.
// A program may change it before it loads templates (cuerator run's
// --render-* flags do), so that every later Load uses it.
//
// A render of the shipped kinds takes about a millisecond and a few MiB, so
// the time and memory leave room for templates far larger. The operator's
// Deployment allows 512 MiB: three workers (DefaultWorkers) at 96 MiB of
// heap each, and the operator itself, fit. A child's size is that of the
// largest ConfigMap or Secret the API server accepts (1 MiB of data; etcd
// refuses any object above 1.5 MiB); 500 children keep the CR's
// status.inventory far below etcd's limit too.
var DefaultBudget = Budget{
	Time:       5 * time.Second,
	Memory:     96 << 20,
	Children:   500,
	ChildBytes: 1 << 20,
	Bytes:      16 << 20,
}

// DefaultWorkers is how many worker processes evaluate at once.
var DefaultWorkers = 3

func (b Budget) withDefaults() Budget {
	d := DefaultBudget
	if b.Time > 0 {
		d.Time = b.Time
	}
	if b.Memory > 0 {
		d.Memory = b.Memory
	}
	if b.Children > 0 {
		d.Children = b.Children
	}
	if b.ChildBytes > 0 {
		d.ChildBytes = b.ChildBytes
	}
	if b.Bytes > 0 {
		d.Bytes = b.Bytes
	}
	return d
}

// The budgets a BudgetError names.
const (
	BudgetTime     = "time"
	BudgetMemory   = "memory"
	BudgetChildren = "children"
	BudgetSize     = "size"
)

// BudgetError is a render given up because it went over one of its
// budgets. Retrying the same CR cannot help: a smaller spec, a template
// that does less with it, or a larger budget can.
type BudgetError struct {
	// Budget is BudgetTime, BudgetMemory, BudgetChildren or BudgetSize.
	Budget string `json:"budget"`
	// Limit is the budget, for people ("5s", "96 MiB", "500 children").
	Limit string `json:"limit"`
	// Detail says what went over it, when known ("objects.cm is 3.2 MiB").
	Detail string `json:"detail,omitempty"`
}

func (e *BudgetError) Error() string {
	s := fmt.Sprintf("render over its %s budget (%s)", e.Budget, e.Limit)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func timeBudgetError(b Budget) *BudgetError {
	return &BudgetError{Budget: BudgetTime, Limit: b.Time.String(),
		Detail: "not done in time and stopped; the spec makes the template's evaluation too expensive (a long list or string, a comprehension over it)"}
}

func memoryBudgetError(b Budget) *BudgetError {
	return &BudgetError{Budget: BudgetMemory, Limit: mib(int(b.Memory)),
		Detail: "the evaluation's heap grew past it and was stopped; the spec makes the template's evaluation too large (a long list or string, a comprehension over it)"}
}

func mib(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// Option changes how Load's library renders.
type Option func(*options)

type options struct {
	budget        Budget
	inProcess     bool
	workers       int
	random        func() string
	checkChildren bool
}

// WithBudget sets the budget of every render; zero fields keep
// DefaultBudget's.
func WithBudget(b Budget) Option { return func(o *options) { o.budget = b } }

// InProcess makes renders evaluate in this process: for a process that
// exits when done (the CLI), where a render given up on ends with it. The
// memory budget is not enforced, and an evaluation given up on keeps its
// core until it ends.
func InProcess() Option { return func(o *options) { o.inProcess = true } }

// Workers sets how many worker processes evaluate at once (at least 1).
func Workers(n int) Option { return func(o *options) { o.workers = max(n, 1) } }

// CheckChildren has every render check its children against the
// Kubernetes API's schemas of their kinds, offline (package kubeschema): a
// field the API server does not know, or a value of the wrong type, fails
// the render as a *TemplateError naming the field and its file:line. The
// API server checks them anyway when they are applied; this is for the CLI
// (vet, render, test), which has no API server. Children of kinds with no
// built-in schema are listed in Rendered.Unchecked.
func CheckChildren() Option { return func(o *options) { o.checkChildren = true } }

// Random replaces the random text a template reads (`random`): for tests
// whose expected children must not change from run to run.
func Random(fn func() string) Option { return func(o *options) { o.random = fn } }

// overBudget remembers the inputs that went over a budget, so that a CR
// whose render was given up on is not evaluated again until its spec (or
// the templates) change: a resync or an event must not start the same
// runaway again.
type overBudget struct {
	mu    sync.Mutex
	order *list.List // of memoKey, newest first
	errs  map[memoKey]*list.Element
}

const overBudgetEntries = 1024

type memoKey [sha256.Size]byte

type memoEntry struct {
	key memoKey
	err *BudgetError
}

func newOverBudget() *overBudget {
	return &overBudget{order: list.New(), errs: map[memoKey]*list.Element{}}
}

// keyOf identifies an input: the kind's directory, the operation, the CR's
// metadata and spec (random text excluded), and what was observed.
func keyOf(dir, op string, input map[string]any, observed any) (memoKey, bool) {
	raw, err := json.Marshal([]any{dir, op, input, observed})
	if err != nil {
		return memoKey{}, false
	}
	return sha256.Sum256(raw), true
}

func (m *overBudget) get(k memoKey) *BudgetError {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.errs[k]; ok {
		m.order.MoveToFront(e)
		return e.Value.(memoEntry).err
	}
	return nil
}

func (m *overBudget) put(k memoKey, err *BudgetError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.errs[k]; ok {
		m.order.MoveToFront(e)
		return
	}
	m.errs[k] = m.order.PushFront(memoEntry{k, err})
	if m.order.Len() > overBudgetEntries {
		last := m.order.Back()
		m.order.Remove(last)
		delete(m.errs, last.Value.(memoEntry).key)
	}
}

// inProcess evaluates in this process, each evaluation in a goroutine of
// its own that is given up on when its time is over. Slots bound how many
// evaluations, running or given up on, exist at once.
type inProcess struct {
	budget Budget
	slots  chan struct{}
}

func newInProcess(b Budget) *inProcess {
	return &inProcess{budget: b, slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// run evaluates fn within the time budget. A zero Time runs fn as it is:
// the worker process, whose parent keeps the time.
func (p *inProcess) run(fn func() (any, error)) (any, error) {
	if p.budget.Time <= 0 {
		return fn()
	}
	timer := time.NewTimer(p.budget.Time)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-timer.C:
		return nil, &BudgetError{Budget: BudgetTime, Limit: p.budget.Time.String(),
			Detail: "no evaluation slot became free in time: earlier renders over their budget are still running"}
	}
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-p.slots }()
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		return nil, timeBudgetError(p.budget)
	}
}
