package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

func TestPriceMakesAPricer(t *testing.T) {
	for _, ms := range []float64{0, 2.5, 1000} {
		m := &stub{}
		w := middleware.Chain(m, middleware.Price(ms))
		p, ok := w.(models.Pricer)
		if !ok {
			t.Fatalf("Price(%v): %T is not a models.Pricer", ms, w)
		}
		if got, ok := p.PriceMS(); got != ms || !ok {
			t.Errorf("PriceMS() = %v, %v; want %v, true", got, ok, ms)
		}
		if middleware.Innermost(w) != m {
			t.Errorf("Price(%v) does not unwrap to the model", ms)
		}
	}
}

func TestPricePassesCallsThrough(t *testing.T) {
	in := records(2)
	out, err := middleware.Chain(&stub{}, middleware.Price(3)).Predict(context.Background(), in)
	if err != nil || len(out) != 2 || &out[0] != &in[0] {
		t.Errorf("got (%v, %v), want the model's answer", out, err)
	}
	errModel := errors.New("quota exceeded")
	failing := models.Func(func(context.Context, []models.Record) ([]models.Record, error) { return nil, errModel })
	if _, err := middleware.Chain(failing, middleware.Price(3)).Predict(context.Background(), in); err != errModel {
		t.Errorf("error %v, want the model's own", err)
	}
}
