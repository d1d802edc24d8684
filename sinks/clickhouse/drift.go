package clickhouse

import (
	"math"
	"slices"
	"sort"

	"github.com/flexiflow/flexiflow/schemas"
)

// DriftStats is the drift of one input feature between two windows, as
// the drift query defines it (see sql/queries/drift.sql): bins cut at the
// reference window's averaged percentiles, each window's distribution the
// count-weighted mixture of its batches' piecewise-linear quantile CDFs.
type DriftStats struct {
	Feature       string
	RefBatches    int
	RecentBatches int
	RefMean       float64
	RecentMean    float64
	PSI           float64 // population stability index, bin shares floored at 1e-4
	KS            float64 // max CDF difference at the bin edges
	JS            float64 // Jensen–Shannon divergence, log base 2
}

// psiFloor keeps empty bins from making PSI infinite.
const psiFloor = 1e-4

// sketchProbs are the CDF values at a summary's knots: min, the
// schemas.FeatureQuantiles, max.
var sketchProbs = []float64{0, 0.05, 0.25, 0.5, 0.75, 0.95, 1}

// SketchCDF is the fraction of a batch's values at or below x, read from
// its summary as the piecewise-linear CDF through (min, 0), the five
// percentiles and (max, 1), with a step where knots coincide.
func SketchCDF(f schemas.FeatureSummary, x float64) float64 {
	knots := append(append([]float64{f.Min}, f.Quantiles...), f.Max)
	var c float64
	for j := 0; j+1 < len(knots); j++ {
		w := sketchProbs[j+1] - sketchProbs[j]
		lo, hi := knots[j], knots[j+1]
		switch {
		case hi > lo:
			c += w * math.Min(math.Max((x-lo)/(hi-lo), 0), 1)
		case x >= lo:
			c += w
		}
	}
	return c
}

// FeatureDrift computes one feature's drift from the summaries of the
// reference and recent windows' batches (one summary per batch).
func FeatureDrift(feature string, ref, recent []schemas.FeatureSummary) DriftStats {
	d := DriftStats{Feature: feature, RefBatches: len(ref), RecentBatches: len(recent)}
	if len(ref) == 0 || len(recent) == 0 {
		d.PSI, d.KS, d.JS = math.NaN(), math.NaN(), math.NaN()
		return d
	}
	edges := make([]float64, len(schemas.FeatureQuantiles))
	for _, f := range ref {
		for i := range edges {
			edges[i] += f.Quantiles[i]
		}
	}
	for i := range edges {
		edges[i] /= float64(len(ref))
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	mixture := func(fs []schemas.FeatureSummary) (cdf []float64, mean float64) {
		cdf = make([]float64, len(edges))
		var n float64
		for _, f := range fs {
			w := float64(f.Count)
			n += w
			mean += w * f.Mean
			for i, e := range edges {
				cdf[i] += w * SketchCDF(f, e)
			}
		}
		for i := range cdf {
			cdf[i] /= n
		}
		return cdf, mean / n
	}
	fr, mr := mixture(ref)
	fq, mq := mixture(recent)
	d.RefMean, d.RecentMean = mr, mq
	p, q := bins(fr), bins(fq)
	for i := range p {
		a, b := math.Max(p[i], psiFloor), math.Max(q[i], psiFloor)
		d.PSI += (b - a) * math.Log(b/a)
		d.JS += 0.5*klTerm(p[i], q[i]) + 0.5*klTerm(q[i], p[i])
	}
	for i := range fr {
		d.KS = math.Max(d.KS, math.Abs(fr[i]-fq[i]))
	}
	return d
}

// bins turns CDF values at the edges into the shares of (-inf, e1], ...,
// (ek, +inf).
func bins(cdf []float64) []float64 {
	out := []float64{cdf[0]}
	for i := 1; i < len(cdf); i++ {
		out = append(out, cdf[i]-cdf[i-1])
	}
	return append(out, 1-cdf[len(cdf)-1])
}

// klTerm is a's term of KL(a || (a+b)/2), log base 2.
func klTerm(a, b float64) float64 {
	if a <= 0 {
		return 0
	}
	return a * math.Log2(2*a/(a+b))
}

// Drift computes FeatureDrift for every feature the traces carry, from the
// first attempt of each batch at step whose start time falls in each window
// ([from, to)), ordered like the query: PSI descending, then name.
func Drift(traces []*schemas.Trace, step string, refFrom, refTo, recentFrom, recentTo int64) []DriftStats {
	ref, recent := map[string][]schemas.FeatureSummary{}, map[string][]schemas.FeatureSummary{}
	for _, t := range traces {
		if t.Step != step || t.Attempt != 1 || t.Model == "" {
			continue
		}
		for _, f := range t.Features {
			if f.Count <= 0 || len(f.Quantiles) != len(schemas.FeatureQuantiles) {
				continue
			}
			if t.TsUs >= refFrom && t.TsUs < refTo {
				ref[f.Name] = append(ref[f.Name], f)
			}
			if t.TsUs >= recentFrom && t.TsUs < recentTo {
				recent[f.Name] = append(recent[f.Name], f)
			}
		}
	}
	var out []DriftStats
	for name, r := range ref {
		if len(recent[name]) == 0 {
			continue
		}
		out = append(out, FeatureDrift(name, r, recent[name]))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PSI != out[j].PSI {
			return out[i].PSI > out[j].PSI
		}
		return out[i].Feature < out[j].Feature
	})
	return out
}
