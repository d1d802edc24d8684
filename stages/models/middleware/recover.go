package middleware

import (
	"context"
	"runtime/debug"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Recover turns a panic in the model into an error that names the model
// and shows the first frames of its stack.
func Recover(name string) Middleware {
	return func(next models.Model) models.Model { return &recoverer{wrapped{next}, name} }
}

type recoverer struct {
	wrapped
	name string
}

func (r *recoverer) Predict(ctx context.Context, in []models.Record) (out []models.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, newError(nil, "model %q panicked: %v\n%s", r.name, p, firstFrames(debug.Stack()))
		}
	}()
	return r.next.Predict(ctx, in)
}

// firstFrames keeps a panic's stack short enough for a trace.
func firstFrames(stack []byte) string {
	const max = 1500
	if len(stack) > max {
		return string(stack[:max]) + "…"
	}
	return string(stack)
}
