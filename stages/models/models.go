package models

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

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

// Factory builds a model from the options a workflow file gives it.
type Factory func(opts map[string]any) (Model, error)

// Registry maps built-in model names to factories. The zero value is not
// usable; call NewRegistry.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds a factory under name, replacing any earlier one.
func (r *Registry) Register(name string, f Factory) { r.factories[name] = f }

// Has reports whether name is registered.
func (r *Registry) Has(name string) bool { _, ok := r.factories[name]; return ok }

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the model registered under name.
func (r *Registry) New(name string, opts map[string]any) (Model, error) {
	f, ok := r.factories[name]
	if !ok {
		return nil, fmt.Errorf("no built-in model %q; known built-in models: %s", name, strings.Join(r.Names(), ", "))
	}
	m, err := f(opts)
	if err != nil {
		return nil, fmt.Errorf("building model %q: %w", name, err)
	}
	return m, nil
}

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
