// Package simsleep is the `sim.sleep` model kind: a model that waits the
// way a served model does, without using CPU, and passes a batch with a
// given probability. It is what planning experiments are built from
// (flexiflow plan, examples/planner.yaml): a 2-core machine can host a
// pipeline of models that each take tens of milliseconds.
//
// A batch enters as decoded input records and leaves, after the wait, as
// a copy of them with the boolean field `ok` set on every record to
// whether the batch passes: an assertion on output.ok then passes or fails
// the whole batch.
package simsleep

import (
	"context"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
)

// KindName is what a workflow's `kind:` says for this kind.
const KindName = "sim.sleep"

// Config is a sim.sleep model's config.
type Config struct {
	LatencyMs float64 `yaml:"latency_ms" required:"true" doc:"How long each call waits, in milliseconds."`
	Jitter    float64 `yaml:"jitter" default:"0" doc:"Spread of the wait as a fraction of latency_ms: each call waits uniformly between latency_ms×(1−jitter) and latency_ms×(1+jitter). 0 to 1."`
	Pass      float64 `yaml:"pass" default:"1" doc:"Probability that a batch passes: every output record's ok field is true with this probability, else false. 0 to 1."`
}

// Check refuses a negative wait and fractions outside [0, 1].
func (c *Config) Check() error {
	switch {
	case c.LatencyMs < 0:
		return models.Problem([]any{"latency_ms"}, "latency_ms must not be negative, got %g", c.LatencyMs)
	case c.Jitter < 0 || c.Jitter > 1:
		return models.Problem([]any{"jitter"}, "jitter is a fraction of latency_ms from 0 to 1, got %g", c.Jitter)
	case c.Pass < 0 || c.Pass > 1:
		return models.Problem([]any{"pass"}, "pass is a probability from 0 to 1, got %g", c.Pass)
	}
	return nil
}

// Kind declares the sim.sleep kind for a models.Registry.
func Kind() models.Kind {
	return models.Define(KindName,
		"Waits latency_ms (± jitter) without using CPU, then returns its input records with the boolean field ok set on each "+
			"to whether the batch passes (probability pass): a stand-in for a slow served model in planning experiments. "+
			"The output schema needs a boolean field ok.",
		func(c *Config, _ models.Env) (models.Model, error) { return &model{cfg: *c}, nil })
}

type model struct{ cfg Config }

// Wait is how long one call waits: uniform within the jitter around the
// latency.
func (m *model) wait() time.Duration {
	ms := m.cfg.LatencyMs
	if j := m.cfg.Jitter; j > 0 {
		ms *= 1 + j*(2*rand.Float64()-1)
	}
	return time.Duration(ms * float64(time.Millisecond))
}

func (m *model) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	t := time.NewTimer(m.wait())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	ok := m.cfg.Pass >= 1 || rand.Float64() < m.cfg.Pass
	out := make([]models.Record, len(in))
	for i, rec := range in {
		o := make(models.Record, len(rec)+1)
		maps.Copy(o, rec)
		o["ok"] = ok
		out[i] = o
	}
	return out, nil
}
