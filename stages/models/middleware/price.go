package middleware

import (
	"context"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Price makes the model cost ms per call to the step's bandit instead of
// its measured latency: the wrapped model implements models.Pricer.
func Price(ms float64) Middleware {
	return func(next models.Model) models.Model { return &price{wrapped{next}, ms} }
}

type price struct {
	wrapped
	ms float64
}

func (p *price) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	return p.next.Predict(ctx, in)
}

// PriceMS is the configured price.
func (p *price) PriceMS() (float64, bool) { return p.ms, true }
