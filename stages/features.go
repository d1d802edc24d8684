package stages

import (
	"math"
	"slices"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/models"
)

// summarize computes count, mean, variance, min, max and quantiles of the
// records' numeric fields (list fields pooled over their elements): the
// compact input summary each trace carries for drift queries. fields names
// them, sorted: the input schema's numeric and list-of-numeric fields
// (schemas.BatchCodec.Numeric), so a batch with none costs nothing.
func summarize(records []models.Record, fields []string) []schemas.FeatureSummary {
	if len(fields) == 0 || len(records) == 0 {
		return nil
	}
	acc := make([]welford, len(fields))
	for i := range acc {
		acc[i] = welford{min: math.Inf(1), max: math.Inf(-1)}
	}
	for _, r := range records {
		for i, name := range fields {
			w := &acc[i]
			v := r[name]
			if x, ok := models.Number(v); ok {
				w.add(x)
				continue
			}
			switch l := v.(type) {
			case []any:
				for _, e := range l {
					if x, ok := models.Number(e); ok {
						w.add(x)
					}
				}
			case []float64:
				for _, x := range l {
					w.add(x)
				}
			}
		}
	}
	out := make([]schemas.FeatureSummary, 0, len(fields))
	for i, name := range fields {
		w := &acc[i]
		if w.n == 0 {
			continue
		}
		out = append(out, schemas.FeatureSummary{Name: name, Count: w.n, Mean: w.mean, Variance: w.variance(), Min: w.min, Max: w.max,
			Quantiles: w.quantiles()})
	}
	return out
}

// welford accumulates mean and variance in one pass.
type welford struct {
	n        int64
	mean, m2 float64
	min, max float64
	values   []float64 // for the quantiles
}

// quantiles returns the values at schemas.FeatureQuantiles (nearest rank).
func (w *welford) quantiles() []float64 {
	slices.Sort(w.values)
	out := make([]float64, len(schemas.FeatureQuantiles))
	for i, q := range schemas.FeatureQuantiles {
		out[i] = w.values[min(len(w.values)-1, int(q*float64(len(w.values))))]
	}
	return out
}

func (w *welford) add(x float64) {
	w.values = append(w.values, x)
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
	w.min = math.Min(w.min, x)
	w.max = math.Max(w.max, x)
}

func (w *welford) variance() float64 {
	if w.n < 2 {
		return 0
	}
	return w.m2 / float64(w.n-1)
}
