package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// errShutdown means the stage is stopping: the attempt did not finish, and
// the batch must be processed again after a restart rather than routed.
var errShutdown = errors.New("stage is shutting down")

// invoke calls a model. Compile wraps every model in its timeout, panic
// recovery, breaker, concurrency cap and retries (see the middleware
// package); invoke turns what comes back into an attempt's outcome: an
// error that says which model failed and how, errShutdown when the stage
// is stopping, and a refusal of any answer that is not one record per
// input record.
func invoke(ctx context.Context, slot Slot, in []models.Record) ([]models.Record, error) {
	out, err := slot.Model.Predict(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errShutdown
		}
		if me := (*middleware.Error)(nil); errors.As(err, &me) {
			return nil, err
		}
		return nil, fmt.Errorf("model %q failed: %w", slot.Name, err)
	}
	if len(out) != len(in) {
		return nil, fmt.Errorf("model %q returned %d records for %d inputs; a model must answer every record, in order", slot.Name, len(out), len(in))
	}
	return out, nil
}

// firstFrames keeps a panic's stack short enough for a trace or a log.
func firstFrames(stack []byte) string {
	const max = 1500
	if len(stack) > max {
		return string(stack[:max]) + "…"
	}
	return string(stack)
}
