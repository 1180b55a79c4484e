package render

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing/fstest"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Worker processes evaluate a library's templates for the operator. A
// worker is this very executable, started again with workerEnv set: the
// package's init serves the worker protocol on standard input and output
// and never returns to main. The parent sends it the template module's
// files once, then one request at a time (a render, or a status
// projection) with the CR's input; the worker answers with the children or
// the status, or an error.
//
// The parent keeps the time: a worker that does not answer within the
// budget is killed, which ends its evaluation and frees its memory at once.
// The worker keeps the memory: a heap above the budget ends it. Either way
// the request fails with a *BudgetError and a new worker serves the next
// one. Workers run with GOMAXPROCS=1, so a runaway evaluation holds at most
// one core, for at most the time budget.
//
// A worker exits when its parent closes its input (the parent exited, or
// closed the library), when its parent changes (it was orphaned), or after
// workerIdle without a request.

const (
	workerEnv = "CUERATOR_RENDER_WORKER"
	// workerIdle is how long a worker waits for a request before it exits;
	// the parent stops handing requests to one idle for almost as long.
	workerIdle       = time.Minute
	workerIdleMargin = 5 * time.Second
	// maxFrame bounds a message, so that a confused peer cannot make the
	// other allocate without limit.
	maxFrame = 256 << 20

	exitOK         = 0
	exitProtocol   = 2
	exitOverMemory = 3
	exitIdle       = 4
	exitOrphaned   = 5
)

func init() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	os.Unsetenv(workerEnv)
	os.Exit(serveWorker(os.Stdin, os.Stdout))
}

// workerHello is the parent's first message: the module and the budget.
type workerHello struct {
	Files         map[string][]byte `json:"files"`
	Budget        Budget            `json:"budget"`
	CheckChildren bool              `json:"checkChildren,omitempty"`
}

type workerRequest struct {
	// Op is "render" or "status".
	Op       string          `json:"op"`
	Kind     string          `json:"kind"` // the kind's directory
	Input    json.RawMessage `json:"input"`
	Random   string          `json:"random,omitempty"`
	Observed json.RawMessage `json:"observed,omitempty"`
}

type workerResponse struct {
	Objects       []json.RawMessage    `json:"objects,omitempty"`
	Keys          []string             `json:"keys,omitempty"`
	PodSelector   map[string]string    `json:"podSelector,omitempty"`
	Unchecked     []string             `json:"unchecked,omitempty"`
	Waiting       []string             `json:"waiting,omitempty"`
	Graph         map[string]Node      `json:"graph,omitempty"`
	Readiness     map[string]Readiness `json:"readiness,omitempty"`
	Inputs        []Input              `json:"inputs,omitempty"`
	PendingInputs bool                 `json:"pendingInputs,omitempty"`
	DeleteInOrder bool                 `json:"deleteInOrder,omitempty"`
	Status        json.RawMessage      `json:"status,omitempty"`
	// StatusKnown: a render's Status is concrete (StatusAsRendered).
	StatusKnown bool       `json:"statusKnown,omitempty"`
	Err         *wireError `json:"err,omitempty"`
}

// wireError carries an error between processes with its type, so that the
// parent's callers tell a spec error from a template error and a budget.
type wireError struct {
	// Type is "validation", "template", "budget" or "other".
	Type    string       `json:"type"`
	Dir     string       `json:"dir,omitempty"`
	Message string       `json:"message"`
	Errs    []FieldError `json:"errs,omitempty"`
	Budget  *BudgetError `json:"budget,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var (
		berr *BudgetError
		terr *TemplateError
		verr *ValidationError
	)
	switch {
	case errors.As(err, &berr):
		return &wireError{Type: "budget", Message: err.Error(), Budget: berr}
	case errors.As(err, &terr):
		w := &wireError{Type: "template", Dir: terr.Dir, Message: terr.Err.Error()}
		if errors.As(terr.Err, &verr) {
			w.Errs = verr.Errs
		}
		return w
	case errors.As(err, &verr):
		return &wireError{Type: "validation", Message: err.Error(), Errs: verr.Errs}
	}
	return &wireError{Type: "other", Message: err.Error()}
}

func (w *wireError) err() error {
	switch w.Type {
	case "budget":
		if w.Budget != nil {
			return w.Budget
		}
	case "template":
		var inner error = errors.New(w.Message)
		if len(w.Errs) > 0 {
			inner = &remoteError{msg: w.Message, verr: &ValidationError{Errs: w.Errs}}
		}
		return &TemplateError{Dir: w.Dir, Err: inner}
	case "validation":
		return &ValidationError{Errs: w.Errs}
	}
	return errors.New(w.Message)
}

// remoteError is a worker's error message, with the field errors it wraps.
type remoteError struct {
	msg  string
	verr *ValidationError
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.verr }

func writeFrame(w *bufio.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(raw)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return nil, fmt.Errorf("render worker: a message of %d bytes, above %d", size, maxFrame)
	}
	raw := make([]byte, size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// serveWorker is a worker process's life: load the module, then answer
// requests until the input closes. It returns the exit code.
func serveWorker(in io.Reader, out io.Writer) int {
	r, w := bufio.NewReader(in), bufio.NewWriter(out)
	raw, err := readFrame(r)
	if err != nil {
		return exitProtocol
	}
	var hello workerHello
	if err := json.Unmarshal(raw, &hello); err != nil {
		return exitProtocol
	}
	budget := hello.Budget.withDefaults()
	debug.SetMemoryLimit(budget.Memory)
	go watchHeap(budget.Memory)
	go watchParent(os.Getppid())

	// The parent keeps the time (Time 0: no deadline here).
	inner := budget
	inner.Time = 0
	opts := []Option{InProcess(), WithBudget(inner)}
	if hello.CheckChildren {
		opts = append(opts, CheckChildren())
	}
	lib, err := Load(fstest.MapFS(mapFiles(hello.Files)), opts...)
	if err := writeFrame(w, workerResponse{Err: toWire(err)}); err != nil || lib == nil {
		return exitProtocol
	}
	kinds := map[string]*Kind{}
	for _, k := range lib.kinds {
		kinds[k.Dir] = k
	}
	idle := time.AfterFunc(workerIdle, func() { os.Exit(exitIdle) })
	for {
		raw, err := readFrame(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return exitOK
		}
		if err != nil {
			return exitProtocol
		}
		if !idle.Stop() {
			return exitIdle // exiting already
		}
		if err := writeFrame(w, answer(kinds, raw)); err != nil {
			return exitProtocol
		}
		idle.Reset(workerIdle)
	}
}

func mapFiles(files map[string][]byte) fstest.MapFS {
	m := fstest.MapFS{}
	for name, content := range files {
		m[name] = &fstest.MapFile{Data: content, Mode: 0o444}
	}
	return m
}

// answer serves one request.
func answer(kinds map[string]*Kind, raw []byte) workerResponse {
	fail := func(err error) workerResponse { return workerResponse{Err: toWire(err)} }
	var req workerRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return fail(fmt.Errorf("render worker: %w", err))
	}
	k := kinds[req.Kind]
	if k == nil {
		return fail(fmt.Errorf("render worker: no kind %q", req.Kind))
	}
	// Numbers as the API machinery has them: int64 where integral.
	var input map[string]any
	if err := utiljson.Unmarshal(req.Input, &input); err != nil {
		return fail(fmt.Errorf("render worker: input: %w", err))
	}
	budget := k.environment().budget
	switch req.Op {
	case "render":
		var observed *Observed
		if len(req.Observed) > 0 {
			observed = &Observed{}
			if err := utiljson.Unmarshal(req.Observed, observed); err != nil {
				return fail(fmt.Errorf("render worker: observed: %w", err))
			}
		}
		ev, err := k.evaluate(input, req.Random, observed, budget)
		if err != nil {
			return fail(err)
		}
		resp := workerResponse{Keys: ev.keys, PodSelector: ev.podSelector, Unchecked: ev.unchecked,
			Waiting: ev.waiting, Graph: ev.graph, Readiness: ev.readiness,
			Inputs: ev.inputs, PendingInputs: ev.pendingInputs, DeleteInOrder: ev.deleteInOrder}
		if ev.statusKnown {
			b, err := json.Marshal(ev.status)
			if err != nil {
				return fail(err)
			}
			resp.Status, resp.StatusKnown = b, true
		}
		for _, obj := range ev.objects {
			b, err := obj.MarshalJSON()
			if err != nil {
				return fail(err)
			}
			resp.Objects = append(resp.Objects, b)
		}
		return resp
	case "status":
		var observed map[string]any
		if err := utiljson.Unmarshal(req.Observed, &observed); err != nil {
			return fail(fmt.Errorf("render worker: observed: %w", err))
		}
		st, err := k.projectStatus(input, req.Random, observed)
		if err != nil {
			return fail(err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			return fail(err)
		}
		return workerResponse{Status: b}
	}
	return fail(fmt.Errorf("render worker: unknown operation %q", req.Op))
}

// watchHeap ends the worker when its heap grows past limit: the evaluation
// that grows it cannot be stopped any other way.
func watchHeap(limit int64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for {
		time.Sleep(5 * time.Millisecond)
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && int64(sample[0].Value.Uint64()) > limit {
			os.Exit(exitOverMemory)
		}
	}
}

// watchParent ends the worker once its parent is gone, even in the middle
// of an evaluation that reads no input.
func watchParent(parent int) {
	for {
		time.Sleep(time.Second)
		if os.Getppid() != parent {
			os.Exit(exitOrphaned)
		}
	}
}

// workerPool hands requests to at most size worker processes, starting
// them as needed.
type workerPool struct {
	hello  workerHello
	budget Budget

	mu     sync.Mutex
	idle   []*worker
	closed bool
	// slots holds one token per live worker; free wakes those waiting for
	// a worker when one is put back.
	slots chan struct{}
	free  chan struct{}
}

type worker struct {
	cmd    *exec.Cmd
	in     *bufio.Writer
	stdin  io.Closer
	out    *bufio.Reader
	done   chan struct{} // closed when the process has exited
	exit   int           // its exit code, once done
	usedAt time.Time
}

func newWorkerPool(files map[string][]byte, b Budget, size int, checkChildren bool) *workerPool {
	if size <= 0 {
		size = DefaultWorkers
	}
	return &workerPool{hello: workerHello{Files: files, Budget: b, CheckChildren: checkChildren}, budget: b, slots: make(chan struct{}, size), free: make(chan struct{}, size)}
}

func (p *workerPool) render(k *Kind, input map[string]any, random string, observed *Observed) (*evaluation, error) {
	rawInput, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	req := workerRequest{Op: "render", Kind: k.Dir, Input: rawInput, Random: random}
	if observed != nil {
		if req.Observed, err = json.Marshal(observed); err != nil {
			return nil, err
		}
	}
	resp, err := p.do(req)
	if err != nil {
		return nil, err
	}
	ev := &evaluation{keys: resp.Keys, podSelector: resp.PodSelector, unchecked: resp.Unchecked,
		waiting: resp.Waiting, graph: resp.Graph, readiness: resp.Readiness,
		inputs: resp.Inputs, pendingInputs: resp.PendingInputs, deleteInOrder: resp.DeleteInOrder}
	if resp.StatusKnown {
		if err := json.Unmarshal(resp.Status, &ev.status); err != nil {
			return nil, fmt.Errorf("render worker: status: %w", err)
		}
		ev.statusKnown = true
	}
	if len(resp.Objects) != len(resp.Keys) {
		return nil, fmt.Errorf("render worker: %d objects for %d keys", len(resp.Objects), len(resp.Keys))
	}
	for _, raw := range resp.Objects {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("render worker: %w", err)
		}
		ev.objects = append(ev.objects, obj)
	}
	return ev, nil
}

func (p *workerPool) status(r *Rendered, obs Observed) (map[string]any, error) {
	rawInput, err := json.Marshal(r.input)
	if err != nil {
		return nil, err
	}
	rawObs, err := json.Marshal(obs)
	if err != nil {
		return nil, err
	}
	resp, err := p.do(workerRequest{Op: "status", Kind: r.kind.Dir, Input: rawInput, Random: r.random, Observed: rawObs})
	if err != nil {
		if berr := (*BudgetError)(nil); errors.As(err, &berr) {
			return nil, fmt.Errorf("status projection: %w", err)
		}
		return nil, err
	}
	if len(resp.Status) == 0 || string(resp.Status) == "null" {
		return nil, nil
	}
	var st map[string]any
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		return nil, fmt.Errorf("status projection: %w", err)
	}
	return st, nil
}

// do sends req to a worker and waits for its answer within the time
// budget. A worker that exited while idle is replaced once.
func (p *workerPool) do(req workerRequest) (*workerResponse, error) {
	for attempt := 0; ; attempt++ {
		w, err := p.get()
		if err != nil {
			return nil, err
		}
		resp, err := p.roundTrip(w, req)
		var dead *workerExit
		if errors.As(err, &dead) && dead.code == exitIdle && attempt == 0 {
			continue
		}
		return resp, err
	}
}

// workerExit is a worker that ended before it answered.
type workerExit struct{ code int }

func (e *workerExit) Error() string {
	return fmt.Sprintf("render worker exited with status %d before it answered", e.code)
}

func (p *workerPool) roundTrip(w *worker, req workerRequest) (*workerResponse, error) {
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := writeFrame(w.in, req); err != nil {
			done <- result{nil, err}
			return
		}
		raw, err := readFrame(w.out)
		done <- result{raw, err}
	}()
	timer := time.NewTimer(p.budget.Time)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			code := p.discard(w, false)
			if code == exitOverMemory {
				return nil, memoryBudgetError(p.budget)
			}
			return nil, &workerExit{code: code}
		}
		var resp workerResponse
		if err := json.Unmarshal(r.raw, &resp); err != nil {
			p.discard(w, true)
			return nil, fmt.Errorf("render worker: %w", err)
		}
		p.put(w)
		if resp.Err != nil {
			return nil, resp.Err.err()
		}
		return &resp, nil
	case <-timer.C:
		// Killing the worker is the only way to stop its evaluation.
		code := p.discard(w, true)
		if code == exitOverMemory {
			return nil, memoryBudgetError(p.budget)
		}
		return nil, timeBudgetError(p.budget)
	}
}

// get returns an idle worker, or starts one when fewer than size are
// alive, or waits for one to be put back.
func (p *workerPool) get() (*worker, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("render: the library is closed")
		}
		for len(p.idle) > 0 {
			w := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if time.Since(w.usedAt) < workerIdle-workerIdleMargin {
				p.mu.Unlock()
				return w, nil
			}
			p.mu.Unlock()
			p.discard(w, false) // about to exit by itself
			p.mu.Lock()
		}
		p.mu.Unlock()
		select {
		case p.slots <- struct{}{}:
			w, err := p.start()
			if err != nil {
				<-p.slots
				return nil, err
			}
			return w, nil
		case <-p.free:
			// A worker was put back: take it, if no one else has.
		}
	}
}

func (p *workerPool) put(w *worker) {
	w.usedAt = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go p.discard(w, false)
		return
	}
	p.idle = append(p.idle, w)
	select {
	case p.free <- struct{}{}:
	default:
	}
}

// discard ends w (at once with kill, else by closing its input), frees
// its slot and returns its exit code.
func (p *workerPool) discard(w *worker, kill bool) int {
	_ = w.stdin.Close()
	if kill {
		_ = w.cmd.Process.Kill()
	}
	select {
	case <-w.done:
	case <-time.After(time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	<-p.slots
	return w.exit
}

// start starts a worker process and sends it the module.
func (p *workerPool) start() (*worker, error) {
	exe, err := selfExecutable()
	if err != nil {
		return nil, fmt.Errorf("render: start a worker: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1", "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	setWorkerAttrs(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("render: start a worker: %w", err)
	}
	w := &worker{cmd: cmd, in: bufio.NewWriter(stdin), stdin: stdin, out: bufio.NewReader(stdout), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		w.exit = exitCode(err)
		close(w.done)
	}()
	fail := func(err error) (*worker, error) {
		_ = cmd.Process.Kill()
		<-w.done
		return nil, fmt.Errorf("render: start a worker: %w", err)
	}
	if err := writeFrame(w.in, p.hello); err != nil {
		return fail(err)
	}
	raw, err := readFrame(w.out)
	if err != nil {
		return fail(err)
	}
	var ready workerResponse
	if err := json.Unmarshal(raw, &ready); err != nil {
		return fail(err)
	}
	if ready.Err != nil {
		return fail(ready.Err.err())
	}
	return w, nil
}

// selfExecutable is the file of this very program: on Linux the image the
// process runs, even if its file was since replaced by another version,
// whose worker protocol could differ.
func selfExecutable() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// close stops every idle worker; busy ones stop when put back.
func (p *workerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		p.discard(w, false)
	}
}
