package render

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// evaluator runs evaluations: in this process (inProcess) or in worker
// processes (workerPool).
type evaluator interface {
	render(k *Kind, input map[string]any, random string, observed *Observed) (*evaluation, error)
	status(r *Rendered, obs Observed) (map[string]any, error)
	close()
}

// environment is how a library's kinds render: their budget, where they
// evaluate, and the inputs known to be over budget.
type environment struct {
	budget        Budget
	eval          evaluator
	overBudget    *overBudget
	random        func() string
	checkChildren bool
}

func newEnvironment(o options, files map[string][]byte) *environment {
	env := &environment{budget: o.budget.withDefaults(), overBudget: newOverBudget(), random: o.random, checkChildren: o.checkChildren}
	if env.random == nil {
		env.random = rand.Text
	}
	if o.inProcess || files == nil {
		env.eval = newInProcess(env.budget)
	} else {
		env.eval = newWorkerPool(files, env.budget, o.workers, o.checkChildren)
	}
	return env
}

// defaultEnvironment serves a Kind that no Load made (a test's).
var defaultEnvironment = sync.OnceValue(func() *environment {
	return newEnvironment(options{inProcess: true}, nil)
})

func (k *Kind) environment() *environment {
	if k.env == nil {
		return defaultEnvironment()
	}
	return k.env
}

func (p *inProcess) render(k *Kind, input map[string]any, random string, observed *Observed) (*evaluation, error) {
	v, err := p.run(func() (any, error) { return k.evaluate(input, random, observed, p.budget) })
	if err != nil {
		return nil, err
	}
	return v.(*evaluation), nil
}

func (p *inProcess) status(r *Rendered, obs Observed) (map[string]any, error) {
	v, err := p.run(func() (any, error) { return r.kind.projectStatus(r.input, r.random, obs) })
	if berr := (*BudgetError)(nil); errors.As(err, &berr) {
		return nil, fmt.Errorf("status projection: %w", err)
	}
	if err != nil {
		return nil, err
	}
	st, _ := v.(map[string]any)
	return st, nil
}

func (p *inProcess) close() {}
