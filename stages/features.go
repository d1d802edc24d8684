package stages

import (
	"math"
	"slices"
	"sort"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/models"
)

// summarize computes count, mean, variance, min, max and quantiles of every
// numeric field of the records (list fields pooled over their elements),
// sorted by name: the compact input summary each trace carries for drift
// queries.
func summarize(records []models.Record) []schemas.FeatureSummary {
	acc := map[string]*welford{}
	add := func(name string, x float64) {
		w := acc[name]
		if w == nil {
			w = &welford{min: math.Inf(1), max: math.Inf(-1)}
			acc[name] = w
		}
		w.add(x)
	}
	for _, r := range records {
		for k, v := range r {
			if x, ok := models.Number(v); ok {
				add(k, x)
				continue
			}
			switch l := v.(type) {
			case []any:
				for _, e := range l {
					if x, ok := models.Number(e); ok {
						add(k, x)
					}
				}
			case []float64:
				for _, x := range l {
					add(k, x)
				}
			}
		}
	}
	out := make([]schemas.FeatureSummary, 0, len(acc))
	for name, w := range acc {
		out = append(out, schemas.FeatureSummary{Name: name, Count: w.n, Mean: w.mean, Variance: w.variance(), Min: w.min, Max: w.max,
			Quantiles: w.quantiles()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
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
