package stages

import (
	"errors"
	"fmt"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// Deps are what compiling a workflow needs besides the file itself.
type Deps struct {
	Models  *models.Registry
	Schemas *schemas.Registry
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
		model, err := deps.Models.New(m.Builtin, m.Options)
		if err != nil {
			errs = append(errs, wf.Errorf(append(path, "models", j), "step %q model %q: %v", spec.Name, m.Name, err))
			continue
		}
		s.Models = append(s.Models, Slot{Name: m.Name, Model: model, Timeout: time.Duration(m.Timeout)})
	}
	aspec := assert.Spec{MinPassFraction: *spec.Assertions.Batch.MinPassFraction, BatchExpr: spec.Assertions.Batch.Expr}
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

// Describe is a one-line description of a step for logs.
func (s *Step) Describe() string {
	return fmt.Sprintf("%s: %s → %s (models %v)", s.Spec.Name, s.Spec.Topics.In, s.Spec.Output, s.ModelNames())
}
