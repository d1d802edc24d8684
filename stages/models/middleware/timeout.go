package middleware

import (
	"context"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Timeout bounds every call to d. A model that honours its context stops
// when d expires; one that ignores it and hangs is abandoned: the call
// returns the timeout error at once and the model's goroutine ends
// whenever the model returns. When the caller's own context ends first
// (the stage is stopping), the call returns that context's error.
func Timeout(name string, d time.Duration) Middleware {
	return func(next models.Model) models.Model { return &timeout{wrapped{next}, name, d} }
}

type timeout struct {
	wrapped
	name string
	d    time.Duration
}

func (t *timeout) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	callCtx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	type result struct {
		out []models.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := t.next.Predict(callCtx, in)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Our deadline passed: whatever the model made of it (a
			// client's own "no answer in time", which may come back a
			// moment before callCtx itself reports it), it is the timeout.
			dl, _ := callCtx.Deadline()
			if callCtx.Err() != nil || !time.Now().Before(dl) {
				return nil, t.expired()
			}
		}
		return r.out, r.err
	case <-callCtx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, t.expired()
	}
}

func (t *timeout) expired() error {
	return newError(context.DeadlineExceeded, "model %q timed out after %s (raise its timeout in the workflow if it is just slow)", t.name, t.d)
}
