package stages

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// Deps are what compiling a workflow needs besides the file itself.
type Deps struct {
	Models  *models.Registry
	Schemas *schemas.Registry
	// Log receives served models' retry and circuit-breaker events; nil
	// discards them.
	Log *zap.Logger
}

// Step is one workflow step, compiled: its codecs, models and assertions.
type Step struct {
	Workflow *workflow.Workflow
	Spec     *workflow.Step
	In       *schemas.BatchCodec // batches this step reads
	Out      *schemas.BatchCodec // batches this step writes on a pass
	Traces   *schemas.TraceCodec
	Models   []Slot
	Asserts  *assert.Program
}

// Slot is one model of a step as the stage calls it.
type Slot struct {
	Name    string
	Model   models.Model
	Timeout time.Duration
	// PriceMS, when Priced, is what one call costs the bandit instead of
	// its measured latency (a workflow's price_ms, or a model that reports
	// a price through models.Pricer).
	PriceMS float64
	Priced  bool
}

// Cost is what one attempt of the slot's model costs the bandit: its price
// when it has one, else the attempt's measured latency in milliseconds.
func (s Slot) Cost(latency time.Duration) float64 {
	if s.Priced {
		return s.PriceMS
	}
	return float64(latency.Microseconds()) / 1000
}

// ModelNames lists the step's models in workflow order.
func (s *Step) ModelNames() []string {
	out := make([]string, len(s.Models))
	for i, m := range s.Models {
		out[i] = m.Name
	}
	return out
}

// Compile builds every step of wf. Errors point at the workflow file's
// lines.
func Compile(wf *workflow.Workflow, deps Deps) ([]*Step, error) {
	for i, path := range wf.Schemas {
		if _, err := deps.Schemas.AddFile(path); err != nil {
			return nil, wf.Errorf([]any{"schemas", i}, "%v", err)
		}
	}
	traces, err := schemas.NewTraceCodec()
	if err != nil {
		return nil, err
	}
	var errs []error
	var steps []*Step
	for i, spec := range wf.Steps {
		s, err := compileStep(wf, i, spec, deps, traces)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		steps = append(steps, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return steps, nil
}

func compileStep(wf *workflow.Workflow, i int, spec *workflow.Step, deps Deps, traces *schemas.TraceCodec) (*Step, error) {
	path := []any{"steps", i}
	var errs []error
	s := &Step{Workflow: wf, Spec: spec, Traces: traces}
	var err error
	if s.In, err = deps.Schemas.BatchCodec(spec.InputSchema); err != nil {
		field := "output_schema"
		p := []any{"steps", i - 1, field}
		if i == 0 {
			p = []any{"input_schema"}
		}
		errs = append(errs, wf.Errorf(p, "step %q input: %v", spec.Name, err))
	}
	if s.Out, err = deps.Schemas.BatchCodec(spec.OutputSchema); err != nil {
		errs = append(errs, wf.Errorf(append(path, "output_schema"), "step %q: %v", spec.Name, err))
	}
	for j, m := range spec.Models {
		model, err := newModel(wf, spec.Name, append(path, "models", j), m, deps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		slot := Slot{Name: m.Name, Model: model, Timeout: time.Duration(m.Timeout)}
		if p, ok := model.(models.Pricer); ok {
			slot.PriceMS, slot.Priced = p.PriceMS()
		}
		s.Models = append(s.Models, slot)
	}
	aspec := assert.Spec{MinPassFraction: *spec.Assertions.Batch.MinPassFraction, BatchExpr: spec.Assertions.Batch.Expr}
	if s.In != nil {
		aspec.Input = &assert.Fields{Record: s.In.Record, Kinds: s.In.Fields}
	}
	if s.Out != nil {
		aspec.Output = &assert.Fields{Record: s.Out.Record, Kinds: s.Out.Fields}
	}
	for _, a := range spec.Assertions.Records {
		aspec.Records = append(aspec.Records, assert.Named{Name: a.Name, Expr: a.Expr})
	}
	if s.Asserts, err = assert.Compile(aspec); err != nil {
		var ee *assert.ExprError
		p := append(slices.Clone(path), "assertions")
		if errors.As(err, &ee) {
			if ee.Index >= 0 {
				p = append(p, "records", ee.Index, "expr")
			} else {
				p = append(p, "batch", "expr")
			}
		}
		errs = append(errs, wf.Errorf(p, "step %q: %v", spec.Name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// newModel builds one model of a step: its kind's config, checked
// against the kind's schema with the entry's lines, then the model, then
// the wrappers every model gets (see the middleware package).
func newModel(wf *workflow.Workflow, step string, path []any, m *workflow.Model, deps Deps) (models.Model, error) {
	kind, err := deps.Models.Kind(m.KindName())
	if err != nil {
		key := "kind"
		if m.Kind == workflow.KindBuiltin && wf.Line(append(path, "builtin")...) != wf.Line(path...) {
			key = "builtin"
		}
		msg := err.Error()
		if m.Config != nil && len(m.Config.Content) > 0 {
			if other := kindTaking(deps.Models, m.Config.Content[0].Value, ""); other != "" {
				msg += fmt.Sprintf("; its key %s is kind %s's: set `kind: %s`", m.Config.Content[0].Value, other, other)
			}
		}
		return nil, wf.Errorf(append(path, key), "step %q model %q: %s", step, m.Name, msg)
	}
	cfg, err := kind.Decode(m.Name, m.Config)
	if err != nil {
		return nil, configErrors(wf, step, path, m, kind, deps.Models, err)
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	model, err := cfg.New(log.With(zap.String("model", m.Name)))
	if err != nil {
		return nil, wf.Errorf(path, "step %q model %q: %v", step, m.Name, err)
	}
	var price middleware.Middleware
	if m.PriceMS != nil {
		price = middleware.Price(*m.PriceMS)
	} else if p, ok := model.(models.Pricer); ok {
		if ms, ok := p.PriceMS(); ok {
			price = middleware.Price(ms)
		}
	}
	return middleware.Chain(model,
		price,
		middleware.Timeout(m.Name, time.Duration(m.Timeout)),
		// The cap is outside the breaker: a call that waited for a slot
		// until its timeout never reached the model, so it is not a failure.
		middleware.Limit(m.Name, m.MaxConcurrency),
		middleware.Breaker(m.Name, middleware.BreakerConfig{Failures: m.Breaker.Failures, Cooldown: time.Duration(m.Breaker.Cooldown), Log: log}),
		middleware.Retry(m.Name, *m.Retries, time.Duration(m.RetryBackoff), log),
		middleware.Recover(m.Name),
	), nil
}

// configErrors points each problem with a model's kind-specific keys at
// its line. An unknown key that another kind takes says which.
func configErrors(wf *workflow.Workflow, step string, path []any, m *workflow.Model, kind *models.Kind, reg *models.Registry, err error) error {
	var out []error
	for _, e := range flatten(err) {
		fe, ok := e.(*models.FieldError)
		if !ok {
			out = append(out, wf.Errorf(path, "step %q model %q (kind %s): %v", step, m.Name, kind.Name, e))
			continue
		}
		msg := fe.Msg
		if len(fe.Path) == 1 && strings.HasPrefix(msg, "unknown key") {
			if other := kindTaking(reg, fmt.Sprint(fe.Path[0]), kind.Name); other != "" {
				msg += fmt.Sprintf("; %s is a key of kind %s: set `kind: %s`", fe.Path[0], other, other)
			}
		}
		line := fe.Line
		if line == 0 {
			line = workflow.NodeLine(m.Config, fe.Path...)
		}
		if line == 0 {
			line = m.Line
		}
		out = append(out, fmt.Errorf("%s:%d: step %q model %q (kind %s): %s", wf.File, line, step, m.Name, kind.Name, msg))
	}
	return errors.Join(out...)
}

// kindTaking names a registered kind other than except whose config has
// the top-level key.
func kindTaking(reg *models.Registry, key, except string) string {
	for _, k := range reg.Kinds() {
		if k.Name == except {
			continue
		}
		for _, f := range k.Fields {
			if f.Name == key {
				return k.Name
			}
		}
	}
	return ""
}

// flatten undoes errors.Join.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Describe is a one-line description of a step for logs.
func (s *Step) Describe() string {
	return fmt.Sprintf("%s: %s → %s (models %v)", s.Spec.Name, s.Spec.Topics.In, s.Spec.Output, s.ModelNames())
}
