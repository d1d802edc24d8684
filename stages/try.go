package stages

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
)

// Attempt is what one model of a step did with one batch, as a stage would
// judge it: its output, whether the step's assertions pass it, and what the
// attempt costs the bandit (Slot.Cost).
type Attempt struct {
	Out    []models.Record
	Passed bool
	Cost   float64
	Reason string // why it did not pass
}

// Try runs model m of the step on in outside any stage, the way a stage
// runs an attempt (the model's middleware, then the assertions), for
// offline evaluation: recording what every model would have done on a
// stream (flexiflow bench outcomes). A model error is an attempt that did
// not pass; only ctx ending is an error.
func (s *Step) Try(ctx context.Context, m int, in []models.Record) (Attempt, error) {
	if m < 0 || m >= len(s.Models) {
		return Attempt{}, fmt.Errorf("step %s has no model %d", s.Spec.Name, m)
	}
	slot := s.Models[m]
	start := time.Now()
	out, err := invoke(ctx, slot, in)
	a := Attempt{Cost: slot.Cost(time.Since(start))}
	if errors.Is(err, errShutdown) || ctx.Err() != nil {
		return a, ctx.Err()
	}
	if err != nil {
		a.Reason = err.Error()
		return a, nil //nolint:nilerr // a model that fails is an attempt that did not pass, as in a stage
	}
	res := s.evaluate(in, out)
	a.Out, a.Passed, a.Reason = out, res.Verdict, res.Reason
	if a.Passed {
		// As a stage would, refuse an answer the output schema cannot hold.
		if _, err := s.Out.Encode(nil, &schemas.Batch{ID: "try", Records: out}); err != nil {
			a.Passed, a.Reason = false, fmt.Sprintf("model %q answered records that do not fit output schema %s: %v", slot.Name, s.Out.Record, err)
		}
	}
	return a, nil
}

// evaluate runs the step's assertions; a panic in them fails the batch with
// the panic as the reason.
func (s *Step) evaluate(in, out []models.Record) (res assert.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = assert.Result{Reason: fmt.Sprintf("assertions panicked: %v\n%s", p, firstFrames(debug.Stack()))}
		}
	}()
	return s.Asserts.Evaluate(in, out)
}
