package schemas

import (
	"encoding/json"
	"fmt"

	"github.com/flexiflow/flexiflow/schemas/avrobin"
)

// Trace is one attempt of one model on one batch at one step.
type Trace struct {
	AttemptID     string
	BatchID       string
	Workflow      string
	Step          string
	Model         string
	RankPosition  int
	Attempt       int
	Tried         []string
	TsUs          int64
	LatencyUs     int64
	Records       int
	RecordsPassed int
	Verdict       string // pass, fail, error, poison
	Error         string
	Assertions    []AssertionCount
	Outcome       string // next, retry, dlq
	Leader        string // Context's top-ranked model
	Estimates     []Estimate
	Features      []FeatureSummary
	// Context is what the step ranked under: the previous step's serving
	// model for a step with `context: upstream`, empty otherwise.
	Context string
}

// Verdicts and outcomes written in traces.
const (
	VerdictPass   = "pass"
	VerdictFail   = "fail"
	VerdictError  = "error"
	VerdictPoison = "poison"

	OutcomeNext  = "next"
	OutcomeRetry = "retry"
	OutcomeDLQ   = "dlq"
)

// AssertionCount is how many records of a batch failed one assertion.
type AssertionCount struct {
	Name   string
	Failed int
}

// Estimate is the policy's view of one model at decision time.
type Estimate struct {
	Model    string
	PassProb float64
	CostMs   float64
	Score    float64
	Pulls    float64
}

// FeatureSummary summarises one numeric input field over a batch.
type FeatureSummary struct {
	Name     string
	Count    int64
	Mean     float64
	Variance float64
	Min      float64
	Max      float64
	// Quantiles are the 5th, 25th, 50th, 75th and 95th percentiles.
	Quantiles []float64
}

// FeatureQuantiles are the percentiles FeatureSummary.Quantiles holds.
var FeatureQuantiles = []float64{0.05, 0.25, 0.5, 0.75, 0.95}

// TraceCodec encodes and decodes traces.
type TraceCodec struct {
	*Codec
	// v1 decodes traces written before trace.avsc gained its last field,
	// context: a traces topic keeps them until retention drops them.
	v1 *Codec
}

// NewTraceCodec builds the codec for the embedded trace schema.
func NewTraceCodec() (*TraceCodec, error) {
	b, err := embedded.ReadFile("trace.avsc")
	if err != nil {
		return nil, err
	}
	c, err := newCodec(string(b))
	if err != nil {
		return nil, err
	}
	v1, err := traceV1(b)
	if err != nil {
		return nil, fmt.Errorf("trace.avsc without its context field: %w", err)
	}
	return &TraceCodec{Codec: c, v1: v1}, nil
}

// traceV1 is the codec of the trace schema before the context field: the
// embedded schema with that field taken out (its canonical form, and so its
// fingerprint, is the old schema's).
func traceV1(schema []byte) (*Codec, error) {
	var m map[string]any
	if err := json.Unmarshal(schema, &m); err != nil {
		return nil, err
	}
	fields, _ := m["fields"].([]any)
	kept := fields[:0:0]
	for _, f := range fields {
		if fm, _ := f.(map[string]any); fm["name"] != "context" {
			kept = append(kept, f)
		}
	}
	m["fields"] = kept
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return newCodec(string(b))
}

// Encode appends the single-object encoding of t to buf. It writes the
// fields in trace.avsc's order directly, without building goavro's native
// maps: a stage encodes one trace per attempt.
func (c *TraceCodec) Encode(buf []byte, t *Trace) ([]byte, error) {
	b := c.appendHeader(buf)
	for _, s := range []string{t.AttemptID, t.BatchID, t.Workflow, t.Step, t.Model} {
		b = avrobin.AppendString(b, s)
	}
	b = avrobin.AppendLong(b, int64(int32(t.RankPosition)))
	b = avrobin.AppendLong(b, int64(int32(t.Attempt)))
	b = appendStrings(b, t.Tried)
	b = avrobin.AppendLong(b, t.TsUs)
	b = avrobin.AppendLong(b, t.LatencyUs)
	b = avrobin.AppendLong(b, int64(int32(t.Records)))
	b = avrobin.AppendLong(b, int64(int32(t.RecordsPassed)))
	b = avrobin.AppendString(b, t.Verdict)
	b = avrobin.AppendString(b, t.Error)
	if n := len(t.Assertions); n > 0 {
		b = avrobin.AppendLong(b, int64(n))
		for _, a := range t.Assertions {
			b = avrobin.AppendLong(avrobin.AppendString(b, a.Name), int64(int32(a.Failed)))
		}
	}
	b = append(b, 0)
	b = avrobin.AppendString(b, t.Outcome)
	b = avrobin.AppendString(b, t.Leader)
	if n := len(t.Estimates); n > 0 {
		b = avrobin.AppendLong(b, int64(n))
		for _, e := range t.Estimates {
			b = avrobin.AppendString(b, e.Model)
			for _, x := range []float64{e.PassProb, e.CostMs, e.Score, e.Pulls} {
				b = avrobin.AppendDouble(b, x)
			}
		}
	}
	b = append(b, 0)
	if n := len(t.Features); n > 0 {
		b = avrobin.AppendLong(b, int64(n))
		for _, f := range t.Features {
			b = avrobin.AppendLong(avrobin.AppendString(b, f.Name), f.Count)
			for _, x := range []float64{f.Mean, f.Variance, f.Min, f.Max} {
				b = avrobin.AppendDouble(b, x)
			}
			if len(f.Quantiles) > 0 {
				b = avrobin.AppendLong(b, int64(len(f.Quantiles)))
				for _, q := range f.Quantiles {
					b = avrobin.AppendDouble(b, q)
				}
			}
			b = append(b, 0)
		}
	}
	b = append(b, 0)
	return avrobin.AppendString(b, t.Context), nil
}

// appendStrings appends an Avro array of strings.
func appendStrings(b []byte, ss []string) []byte {
	if len(ss) > 0 {
		b = avrobin.AppendLong(b, int64(len(ss)))
		for _, s := range ss {
			b = avrobin.AppendString(b, s)
		}
	}
	return append(b, 0)
}

// Decode decodes one trace message.
func (c *TraceCodec) Decode(msg []byte) (*Trace, error) {
	fp, err := Fingerprint(msg)
	if err != nil {
		return nil, err
	}
	codec := c.Codec
	if fp == c.v1.fingerprint {
		codec = c.v1
	} else if fp != c.fingerprint {
		return nil, fmt.Errorf("%w %#016x: not a trace (trace fingerprint %#016x)", ErrUnknownSchema, fp, c.fingerprint)
	}
	v, err := codec.decodeBody(msg[10:])
	if err != nil {
		return nil, fmt.Errorf("malformed trace: %w", err)
	}
	m := v.(map[string]any)
	t := &Trace{
		AttemptID: m["attempt_id"].(string), BatchID: m["batch_id"].(string),
		Workflow: m["workflow"].(string), Step: m["step"].(string), Model: m["model"].(string),
		RankPosition: int(m["rank_position"].(int32)), Attempt: int(m["attempt"].(int32)),
		TsUs: m["ts_us"].(int64), LatencyUs: m["latency_us"].(int64),
		Records: int(m["records"].(int32)), RecordsPassed: int(m["records_passed"].(int32)),
		Verdict: m["verdict"].(string), Error: m["error"].(string), Outcome: m["outcome"].(string),
		Leader: m["leader"].(string),
	}
	if ctx, ok := m["context"].(string); ok {
		t.Context = ctx
	}
	for _, s := range m["tried"].([]any) {
		t.Tried = append(t.Tried, s.(string))
	}
	for _, a := range m["assertions"].([]any) {
		am := a.(map[string]any)
		t.Assertions = append(t.Assertions, AssertionCount{Name: am["name"].(string), Failed: int(am["failed"].(int32))})
	}
	for _, e := range m["estimates"].([]any) {
		em := e.(map[string]any)
		t.Estimates = append(t.Estimates, Estimate{Model: em["model"].(string), PassProb: em["pass_prob"].(float64),
			CostMs: em["cost_ms"].(float64), Score: em["score"].(float64), Pulls: em["pulls"].(float64)})
	}
	for _, f := range m["features"].([]any) {
		fm := f.(map[string]any)
		fs := FeatureSummary{Name: fm["name"].(string), Count: fm["count"].(int64),
			Mean: fm["mean"].(float64), Variance: fm["variance"].(float64), Min: fm["min"].(float64), Max: fm["max"].(float64)}
		for _, q := range fm["quantiles"].([]any) {
			fs.Quantiles = append(fs.Quantiles, q.(float64))
		}
		t.Features = append(t.Features, fs)
	}
	return t, nil
}
