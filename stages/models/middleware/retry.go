package middleware

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stream"
)

// Retry repeats a call up to n more times when it fails with an error the
// kind marked models.Retryable, waiting a jittered backoff from first
// (doubling, at most 2s) between tries. Any other error, and every
// answer, is returned as it is.
func Retry(name string, n int, first time.Duration, log *zap.Logger) Middleware {
	if n <= 0 {
		return nil
	}
	if log == nil {
		log = zap.NewNop()
	}
	return func(next models.Model) models.Model { return &retry{wrapped{next}, name, n, first, log} }
}

type retry struct {
	wrapped
	name  string
	n     int
	first time.Duration
	log   *zap.Logger
}

func (r *retry) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	backoff := stream.NewBackoff(r.first, 2*time.Second)
	for attempt := 0; ; attempt++ {
		out, err := r.next.Predict(ctx, in)
		if err == nil || !models.IsRetryable(err) || attempt >= r.n {
			if err != nil && attempt > 0 {
				return nil, fmt.Errorf("%w (after %d retries)", err, attempt)
			}
			return out, err
		}
		wait := backoff.Next()
		r.log.Debug("retrying after a transport error", zap.String("model", r.name), zap.Int("retry", attempt+1), zap.Duration("backoff", wait), zap.Error(err))
		if stream.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("%w (gave up retrying: %v)", err, ctx.Err())
		}
	}
}
