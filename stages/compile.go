package stages

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
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
		model, err := newModel(m, deps)
		if err != nil {
			errs = append(errs, wf.Errorf(append(path, "models", j), "step %q model %q: %v", spec.Name, m.Name, err))
			continue
		}
		slot := Slot{Name: m.Name, Model: model, Timeout: time.Duration(m.Timeout)}
		if p, ok := model.(models.Pricer); ok {
			slot.PriceMS, slot.Priced = p.PriceMS()
		}
		if m.PriceMS != nil {
			slot.PriceMS, slot.Priced = *m.PriceMS, true
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
		p := append(path, "assertions")
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

// newModel builds one model of a step for its kind.
func newModel(m *workflow.Model, deps Deps) (models.Model, error) {
	switch m.Kind {
	case workflow.KindKServe:
		cfg := kserve.Config{
			Name: m.Name, URL: m.URL, Protocol: m.Protocol, Model: m.Served, Version: m.Version,
			Carry: m.Carry, MaxConcurrency: m.MaxConcurrency, RetryBackoff: time.Duration(m.RetryBackoff),
		}
		for _, in := range m.Inputs {
			cfg.Inputs = append(cfg.Inputs, kserve.Input{Tensor: in.Tensor, Fields: in.Fields, Datatype: in.Datatype})
		}
		for _, o := range m.Outputs {
			cfg.Outputs = append(cfg.Outputs, kserve.Output{Tensor: o.Tensor, Field: o.Field, Reduce: o.Reduce})
		}
		if m.Binary != nil {
			cfg.Binary = *m.Binary
		}
		if m.Retries != nil {
			cfg.Retries = *m.Retries
		}
		if m.Breaker != nil {
			cfg.BreakerFailures, cfg.BreakerCooldown = m.Breaker.Failures, time.Duration(m.Breaker.Cooldown)
		}
		if a := m.Auth; a != nil {
			cfg.TokenEnv, cfg.TokenFile, cfg.CAFile = a.TokenEnv, a.TokenFile, a.CAFile
		}
		var opts []kserve.Option
		if deps.Log != nil {
			opts = append(opts, kserve.WithLogger(deps.Log))
		}
		return kserve.New(cfg, opts...)
	default:
		return deps.Models.New(m.Builtin, m.Options)
	}
}

// Describe is a one-line description of a step for logs.
func (s *Step) Describe() string {
	return fmt.Sprintf("%s: %s → %s (models %v)", s.Spec.Name, s.Spec.Topics.In, s.Spec.Output, s.ModelNames())
}
