package middleware

import (
	"context"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Limit lets at most n calls into the model at once (n <= 0: no cap). A
// call waiting for a slot gives up when its context ends.
func Limit(name string, n int) Middleware {
	if n <= 0 {
		return nil
	}
	return func(next models.Model) models.Model {
		return &limit{wrapped{next}, name, make(chan struct{}, n)}
	}
}

type limit struct {
	wrapped
	name string
	sem  chan struct{}
}

func (l *limit) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
	case <-ctx.Done():
		return nil, newError(ctx.Err(), "model %q: waiting for one of its %d concurrent call slots (max_concurrency): %v", l.name, cap(l.sem), ctx.Err())
	}
	return l.next.Predict(ctx, in)
}
