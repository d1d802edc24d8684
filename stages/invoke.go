package stages

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/flexiflow/flexiflow/stages/models"
)

// errShutdown means the stage is stopping: the attempt did not finish, and
// the batch must be processed again after a restart rather than routed.
var errShutdown = errors.New("stage is shutting down")

// invoke calls a model under its timeout. A panic, an error, a timeout and a
// wrong number of output records all come back as errors that say which.
// A model that ignores its context and hangs is abandoned when its timeout
// expires: its goroutine ends whenever the model returns.
func invoke(ctx context.Context, slot Slot, in []models.Record) ([]models.Record, error) {
	callCtx, cancel := context.WithTimeout(ctx, slot.Timeout)
	defer cancel()
	type result struct {
		out []models.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("model %q panicked: %v\n%s", slot.Name, r, firstFrames(debug.Stack()))}
			}
		}()
		out, err := slot.Model.Predict(callCtx, in)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if ctx.Err() != nil {
				return nil, errShutdown
			}
			if errors.Is(r.err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("model %q timed out after %s (raise its timeout in the workflow if it is just slow)", slot.Name, slot.Timeout)
			}
			return nil, fmt.Errorf("model %q failed: %w", slot.Name, r.err)
		}
		if len(r.out) != len(in) {
			return nil, fmt.Errorf("model %q returned %d records for %d inputs; a model must answer every record, in order", slot.Name, len(r.out), len(in))
		}
		return r.out, nil
	case <-callCtx.Done():
		if ctx.Err() != nil {
			return nil, errShutdown
		}
		return nil, fmt.Errorf("model %q timed out after %s (raise its timeout in the workflow if it is just slow)", slot.Name, slot.Timeout)
	}
}

// firstFrames keeps a panic's stack short enough for a trace.
func firstFrames(stack []byte) string {
	const max = 1500
	if len(stack) > max {
		return string(stack[:max]) + "…"
	}
	return string(stack)
}
