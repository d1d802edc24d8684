package models

import "context"

// Record is one decoded Avro record in goavro's native form.
type Record = map[string]any

// Model answers one batch of records. Predict must return exactly one output
// record per input record, in input order, or an error. It should honour ctx:
// the stage cancels ctx when the model's timeout expires. A stage calls
// Predict from several goroutines at once (one per batch it has in hand; see
// stages.WithWorkers), so a model must be safe for concurrent use.
type Model interface {
	Predict(ctx context.Context, in []Record) ([]Record, error)
}

// Pricer is implemented by models that cost a fixed price per call (a paid
// API, a served model with a configured price) rather than their latency.
// The stage's bandit then learns from the price, in milliseconds' units.
type Pricer interface {
	PriceMS() (price float64, ok bool)
}

// Func adapts an ordinary function to the Model interface.
type Func func(ctx context.Context, in []Record) ([]Record, error)

// Predict calls f.
func (f Func) Predict(ctx context.Context, in []Record) ([]Record, error) { return f(ctx, in) }

// Number converts a numeric field value of a Record (any of goavro's
// native number types, or a Go int) to float64.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
