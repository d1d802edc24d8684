package clickhouse

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
)

// Row is one row of the traces table: one trace, flattened into the
// table's columns (nested lists become parallel arrays).
type Row struct {
	AttemptID        string      `ch:"attempt_id" json:"attempt_id"`
	BatchID          string      `ch:"batch_id" json:"batch_id"`
	Workflow         string      `ch:"workflow" json:"workflow"`
	Step             string      `ch:"step" json:"step"`
	Model            string      `ch:"model" json:"model"`
	RankPosition     uint8       `ch:"rank_position" json:"rank_position"`
	Attempt          uint16      `ch:"attempt" json:"attempt"`
	Tried            []string    `ch:"tried" json:"tried"`
	Ts               time.Time   `ch:"ts" json:"-"`
	LatencyUs        uint64      `ch:"latency_us" json:"latency_us"`
	Records          uint32      `ch:"records" json:"records"`
	RecordsPassed    uint32      `ch:"records_passed" json:"records_passed"`
	Verdict          string      `ch:"verdict" json:"verdict"`
	Error            string      `ch:"error" json:"error"`
	Outcome          string      `ch:"outcome" json:"outcome"`
	Leader           string      `ch:"leader" json:"leader"`
	AssertionNames   []string    `ch:"assertion_names" json:"assertion_names"`
	AssertionFailed  []uint32    `ch:"assertion_failed" json:"assertion_failed"`
	EstimateModels   []string    `ch:"estimate_models" json:"estimate_models"`
	EstimatePass     []float64   `ch:"estimate_pass" json:"estimate_pass"`
	EstimateCostMs   []float64   `ch:"estimate_cost_ms" json:"estimate_cost_ms"`
	EstimateScore    []float64   `ch:"estimate_score" json:"estimate_score"`
	EstimatePulls    []float64   `ch:"estimate_pulls" json:"estimate_pulls"`
	FeatureNames     []string    `ch:"feature_names" json:"feature_names"`
	FeatureCount     []uint64    `ch:"feature_count" json:"feature_count"`
	FeatureMean      []float64   `ch:"feature_mean" json:"feature_mean"`
	FeatureVariance  []float64   `ch:"feature_variance" json:"feature_variance"`
	FeatureMin       []float64   `ch:"feature_min" json:"feature_min"`
	FeatureMax       []float64   `ch:"feature_max" json:"feature_max"`
	FeatureQuantiles [][]float64 `ch:"feature_quantiles" json:"feature_quantiles"`
	Context          string      `ch:"context" json:"context"`
}

// Columns are the traces columns a Row fills, in insert order: its fields'
// ch tags.
var Columns = func() []string {
	t := reflect.TypeFor[Row]()
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Tag.Get("ch")
	}
	return out
}()

// FromTrace converts a trace into its row. Negative or oversized counts
// (which the stages never write) are clamped to the column types.
func FromTrace(t *schemas.Trace) Row {
	as, es, fs := t.Assertions, t.Estimates, t.Features
	r := Row{
		AttemptID: t.AttemptID, BatchID: t.BatchID, Workflow: t.Workflow, Step: t.Step, Model: t.Model,
		RankPosition: uint8(clamp(int64(t.RankPosition), 255)), Attempt: uint16(clamp(int64(t.Attempt), 65535)),
		Tried: nonNil(t.Tried), Ts: time.UnixMicro(t.TsUs).UTC(), LatencyUs: uint64(clamp(t.LatencyUs, 1<<62)),
		Records: uint32(clamp(int64(t.Records), 1<<31)), RecordsPassed: uint32(clamp(int64(t.RecordsPassed), 1<<31)),
		Verdict: t.Verdict, Error: t.Error, Outcome: t.Outcome, Leader: t.Leader, Context: t.Context,
		AssertionNames: make([]string, len(as)), AssertionFailed: make([]uint32, len(as)),
		EstimateModels: make([]string, len(es)), EstimatePass: make([]float64, len(es)), EstimateCostMs: make([]float64, len(es)),
		EstimateScore: make([]float64, len(es)), EstimatePulls: make([]float64, len(es)),
		FeatureNames: make([]string, len(fs)), FeatureCount: make([]uint64, len(fs)), FeatureMean: make([]float64, len(fs)),
		FeatureVariance: make([]float64, len(fs)), FeatureMin: make([]float64, len(fs)), FeatureMax: make([]float64, len(fs)),
		FeatureQuantiles: make([][]float64, len(fs)),
	}
	for i, a := range as {
		r.AssertionNames[i], r.AssertionFailed[i] = a.Name, uint32(clamp(int64(a.Failed), 1<<31))
	}
	for i, e := range es {
		r.EstimateModels[i], r.EstimatePass[i], r.EstimateCostMs[i], r.EstimateScore[i], r.EstimatePulls[i] = e.Model, e.PassProb, e.CostMs, e.Score, e.Pulls
	}
	for i, f := range fs {
		r.FeatureNames[i], r.FeatureCount[i], r.FeatureMean[i] = f.Name, uint64(clamp(f.Count, 1<<62)), f.Mean
		r.FeatureVariance[i], r.FeatureMin[i], r.FeatureMax[i] = f.Variance, f.Min, f.Max
		r.FeatureQuantiles[i] = append([]float64{}, f.Quantiles...)
	}
	return r
}

func clamp(v, hi int64) int64 { return max(0, min(v, hi)) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TimeLayout is how timestamps travel as text to ClickHouse (DateTime64(6)
// parameters and JSONEachRow values), always in UTC.
const TimeLayout = "2006-01-02 15:04:05.000000"

// AppendJSONEachRow appends rows in ClickHouse's JSONEachRow format (one
// object per line), for engines fed with text.
func AppendJSONEachRow(buf []byte, rows []Row) ([]byte, error) {
	type wire struct {
		Row
		Ts string `json:"ts"`
	}
	for i := range rows {
		b, err := json.Marshal(wire{Row: rows[i], Ts: rows[i].Ts.UTC().Format(TimeLayout)})
		if err != nil {
			return buf, err
		}
		buf = append(append(buf, b...), '\n')
	}
	return buf, nil
}
