package schemas

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/schemas/avrobin"
)

func TestBatchRoundTrip(t *testing.T) {
	reg, err := testRegistry()
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.BatchCodec("flexiflow.demo.DigitImage")
	if err != nil {
		t.Fatal(err)
	}
	in := &Batch{ID: "b1", Workflow: "w", Step: "s", Attempt: 2, Tried: []string{"a", "b"}, CreatedAtMs: 1700000000000,
		Records: []map[string]any{{"id": "r1", "label": int32(3), "pixels": []float64{0, 1.5, 16}}}}
	msg, err := c.Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if msg[0] != 0xC3 || msg[1] != 0x01 {
		t.Fatalf("not single-object encoded: % x", msg[:2])
	}
	if fp, _ := Fingerprint(msg); fp != c.Fingerprint() {
		t.Errorf("header fingerprint %#x, codec %#x", fp, c.Fingerprint())
	}
	out, err := c.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != "b1" || out.Attempt != 2 || strings.Join(out.Tried, ",") != "a,b" || len(out.Records) != 1 {
		t.Errorf("round trip changed the batch: %+v", out)
	}
	if px := out.Records[0]["pixels"].([]any); len(px) != 3 || px[2].(float64) != 16 {
		t.Errorf("pixels: %v", px)
	}
}

func TestDecodeErrors(t *testing.T) {
	reg, _ := testRegistry()
	img, _ := reg.BatchCodec("flexiflow.demo.DigitImage")
	pred, _ := reg.BatchCodec("flexiflow.demo.DigitPrediction")
	other, _ := pred.Encode(nil, &Batch{ID: "x"})
	good, _ := img.Encode(nil, &Batch{ID: "x", Records: []map[string]any{{"id": "r", "label": int32(1), "pixels": []float64{1}}}})
	cases := []struct {
		name string
		msg  []byte
		want error
		text string
	}{
		{"garbage", []byte("hello"), ErrNotSingleObject, ""},
		{"empty", nil, ErrNotSingleObject, ""},
		{"other schema", other, ErrUnknownSchema, "this step reads batches of flexiflow.demo.DigitImage"},
		{"truncated body", good[:len(good)-3], nil, "malformed Avro body"},
	}
	for _, c := range cases {
		_, err := img.Decode(c.msg)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: got %v, want %v containing %q", c.name, err, c.want, c.text)
		}
	}
}

func TestTraceRoundTrip(t *testing.T) {
	c, err := NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	in := &Trace{AttemptID: "b/s/1", BatchID: "b", Step: "s", Model: "m", Attempt: 1, TsUs: 42, Verdict: VerdictFail,
		Assertions: []AssertionCount{{"a", 3}}, Estimates: []Estimate{{"m", 0.5, 2, 4, 1}},
		Features: []FeatureSummary{{"x", 10, 1, 2, 0, 3, []float64{0, 1, 1, 2, 3}}}, Outcome: OutcomeRetry}
	msg, err := c.Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if out.AttemptID != in.AttemptID || out.Assertions[0].Failed != 3 || out.Estimates[0].Score != 4 || out.Features[0].Count != 10 || len(out.Features[0].Quantiles) != 5 || out.Features[0].Quantiles[4] != 3 || out.TsUs != 42 {
		t.Errorf("round trip changed the trace: %+v", out)
	}
}

func TestRegistryRejects(t *testing.T) {
	reg, _ := testRegistry()
	for _, s := range []string{`{`, `{"type": "enum", "name": "E", "symbols": ["A"]}`, `{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}`} {
		if _, err := reg.Add(s); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
	if _, err := reg.BatchCodec("no.Such"); err == nil || !strings.Contains(err.Error(), "flexiflow.demo.DigitImage") {
		t.Errorf("unknown record: %v", err)
	}
}

// The compiled codec writes byte for byte what goavro writes, for batches
// of every embedded record schema and for traces; values it does not take
// (a float64 label) go to goavro and still encode.
func TestFastPathMatchesGoavro(t *testing.T) {
	reg, err := testRegistry()
	if err != nil {
		t.Fatal(err)
	}
	records := map[string][]map[string]any{
		"flexiflow.demo.DigitImage":      {{"id": "r1", "label": int32(3), "pixels": []float64{0, 1.5, 16}}, {"id": "r2", "label": 7, "pixels": []any{2.0}}},
		"flexiflow.demo.DigitPrediction": {{"id": "r1", "label": int32(3), "predicted": int32(8), "confidence": 0.25}},
		"flexiflow.bench.Blob":           {{"id": "r1", "payload": []byte("xyz")}, {"id": "r2", "payload": []byte{}}},
	}
	for name, recs := range records {
		c, err := reg.BatchCodec(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.fast == nil {
			t.Fatalf("%s: no compiled codec", name)
		}
		b := &Batch{ID: "b1", Workflow: "w", Step: "s", Attempt: 2, Tried: []string{"a"}, CreatedAtMs: 17e11, Records: recs}
		got, err := c.Encode([]byte("x"), b)
		if err != nil {
			t.Fatal(err)
		}
		slow := *c.Codec
		slow.fast = nil
		want, err := (&BatchCodec{Codec: &slow, Record: name}).Encode([]byte("x"), b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: compiled codec wrote\n%x\ngoavro wrote\n%x", name, got, want)
		}
		back, err := c.Decode(got[1:])
		if err != nil || len(back.Records) != len(recs) || back.Records[0]["id"] != "r1" {
			t.Errorf("%s: decode: %+v, %v", name, back, err)
		}
	}
	// A batch with no models tried and no records (nil slices) too.
	blob, _ := reg.BatchCodec("flexiflow.bench.Blob")
	slow := *blob.Codec
	slow.fast = nil
	got, err1 := blob.Encode(nil, &Batch{ID: "x"})
	want, err2 := (&BatchCodec{Codec: &slow}).Encode(nil, &Batch{ID: "x"})
	if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
		t.Errorf("empty batch: compiled %x (%v), goavro %x (%v)", got, err1, want, err2)
	}
	// A float64 label is not what a decoded record holds: goavro converts it.
	c, _ := reg.BatchCodec("flexiflow.demo.DigitPrediction")
	msg, err := c.Encode(nil, &Batch{ID: "b", Records: []map[string]any{{"id": "r", "label": 3.0, "predicted": 8.0, "confidence": 1.0}}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decode(msg)
	if err != nil || back.Records[0]["predicted"] != int32(8) {
		t.Fatalf("float64 fields through goavro: %+v, %v", back, err)
	}
}

func TestNumericFields(t *testing.T) {
	reg, _ := testRegistry()
	for name, want := range map[string]string{
		"flexiflow.demo.DigitImage":      "label,pixels",
		"flexiflow.demo.DigitPrediction": "confidence,label,predicted",
		"flexiflow.bench.Blob":           "",
	} {
		c, err := reg.BatchCodec(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Numeric, ","); got != want {
			t.Errorf("%s: numeric fields %q, want %q", name, got, want)
		}
	}
	n, err := reg.Add(`{"type":"record","name":"M","fields":[{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"f","type":{"type":"float"}},{"name":"s","type":{"type":"array","items":"string"}},{"name":"u","type":["null","int"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := reg.BatchCodec(n); strings.Join(c.Numeric, ",") != "f" {
		t.Errorf("mixed record: numeric fields %v, want [f]", c.Numeric)
	}
}

// traceNative is a trace as goavro's native map, to check the hand-written
// encoder against goavro.
func traceNative(t *Trace) map[string]any {
	tried := make([]any, len(t.Tried))
	for i, s := range t.Tried {
		tried[i] = s
	}
	asserts := make([]any, len(t.Assertions))
	for i, a := range t.Assertions {
		asserts[i] = map[string]any{"name": a.Name, "failed": int32(a.Failed)}
	}
	ests := make([]any, len(t.Estimates))
	for i, e := range t.Estimates {
		ests[i] = map[string]any{"model": e.Model, "pass_prob": e.PassProb, "cost_ms": e.CostMs, "score": e.Score, "pulls": e.Pulls}
	}
	feats := make([]any, len(t.Features))
	for i, f := range t.Features {
		q := make([]any, len(f.Quantiles))
		for j, x := range f.Quantiles {
			q[j] = x
		}
		feats[i] = map[string]any{"name": f.Name, "count": f.Count, "mean": f.Mean, "variance": f.Variance, "min": f.Min, "max": f.Max, "quantiles": q}
	}
	return map[string]any{
		"attempt_id": t.AttemptID, "batch_id": t.BatchID, "workflow": t.Workflow, "step": t.Step,
		"model": t.Model, "rank_position": int32(t.RankPosition), "attempt": int32(t.Attempt),
		"tried": tried, "ts_us": t.TsUs, "latency_us": t.LatencyUs,
		"records": int32(t.Records), "records_passed": int32(t.RecordsPassed),
		"verdict": t.Verdict, "error": t.Error, "assertions": asserts, "outcome": t.Outcome,
		"leader": t.Leader, "estimates": ests, "features": feats, "context": t.Context,
	}
}

func TestTraceEncodeMatchesGoavro(t *testing.T) {
	c, err := NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Trace{
		{},
		{AttemptID: "b/s/2", BatchID: "b", Workflow: "w", Step: "s", Model: "m", RankPosition: 1, Attempt: 2,
			Tried: []string{"a", "ü"}, TsUs: -5, LatencyUs: 1 << 40, Records: 100, RecordsPassed: 99,
			Verdict: VerdictFail, Error: "x failed", Outcome: OutcomeRetry, Leader: "a", Context: "median",
			Assertions: []AssertionCount{{Name: "x", Failed: 1}, {Name: "y"}},
			Estimates:  []Estimate{{Model: "a", PassProb: 0.5, CostMs: 3, Score: 6, Pulls: 12.5}},
			Features: []FeatureSummary{{Name: "f", Count: 3, Mean: 1, Variance: 2, Min: -1, Max: 4, Quantiles: []float64{1, 2, 3, 4, 5}},
				{Name: "g"}}},
	} {
		got, err := c.Encode([]byte("x"), tr)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.avro.SingleFromNative([]byte("x"), traceNative(tr))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trace %+v:\nencoder wrote %x\ngoavro wrote  %x", tr, got, want)
		}
		back, err := c.Decode(got[1:])
		if err != nil || back.AttemptID != tr.AttemptID || len(back.Features) != len(tr.Features) || back.Context != tr.Context {
			t.Fatalf("decode: %+v, %v", back, err)
		}
	}
}

// A trace written before trace.avsc gained its context field (the schema
// kept in testdata/trace-v1.avsc) still decodes, with an empty context.
func TestTraceDecodesTheSchemaBeforeContext(t *testing.T) {
	c, err := NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile("testdata/trace-v1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := newCodec(string(old))
	if err != nil {
		t.Fatal(err)
	}
	if v1.fingerprint == c.fingerprint || v1.fingerprint != c.v1.fingerprint {
		t.Fatalf("fingerprints: old schema %#x, current %#x, the codec's old %#x", v1.fingerprint, c.fingerprint, c.v1.fingerprint)
	}
	tr := &Trace{AttemptID: "b/s/1", BatchID: "b", Step: "s", Model: "m", Attempt: 1, Verdict: VerdictPass, Outcome: OutcomeNext, Leader: "m"}
	native := traceNative(tr)
	delete(native, "context")
	msg, err := v1.avro.SingleFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decode(msg)
	if err != nil || back.AttemptID != "b/s/1" || back.Leader != "m" || back.Context != "" {
		t.Fatalf("old trace decoded as %+v, %v", back, err)
	}
}

// A corrupt block count is refused before anything is allocated, also for
// a schema goavro decodes (logical types): goavro alone would reserve the
// 2^31-1 items the five bytes declare, and the process would die.
func TestCorruptBlockCountDoesNotExhaustMemory(t *testing.T) {
	reg, _ := testRegistry()
	name, err := reg.Add(`{"type":"record","name":"Reading","namespace":"t","fields":[
		{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"xs","type":{"type":"array","items":"long"}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.BatchCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	if c.fast != nil || c.layout == nil {
		t.Fatalf("a schema with a logical type should be decoded by goavro after a layout check")
	}
	good, err := c.Encode(nil, &Batch{ID: "b", Records: []map[string]any{{"at": time.UnixMilli(1700000000123), "xs": []any{int64(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decode(good)
	if err != nil || !back.Records[0]["at"].(time.Time).Equal(time.UnixMilli(1700000000123)) {
		t.Fatalf("valid batch: %+v, %v", back, err)
	}
	// An envelope whose records array declares 2^31-1 items, and ends.
	body := avrobin.AppendString(nil, "b")   // batch_id
	body = avrobin.AppendString(body, "")    // workflow
	body = avrobin.AppendString(body, "")    // step
	body = append(body, 0, 0, 0)             // attempt, tried, created_at_ms
	body = avrobin.AppendLong(body, 1<<31-1) // records: the corrupt count
	for _, codec := range []*BatchCodec{c, mustBatchCodec(t, reg, "flexiflow.bench.Blob")} {
		_, err := codec.Decode(append(codec.appendHeader(nil), body...))
		if err == nil || !strings.Contains(err.Error(), "do not fit") {
			t.Errorf("%s: corrupt count: %v", codec.Record, err)
		}
	}
}

func mustBatchCodec(t *testing.T, reg *Registry, name string) *BatchCodec {
	t.Helper()
	c, err := reg.BatchCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testRegistry holds the records these tests encode: the digits models'
// and the throughput benchmark's, read from where those packages embed
// them.
func testRegistry() (*Registry, error) {
	r, _ := NewRegistry()
	if err := r.AddFS(os.DirFS("../stages/models/digits"), "schemas/*.avsc"); err != nil {
		return nil, err
	}
	if err := r.AddFS(os.DirFS("../bench/throughput/noop"), "*.avsc"); err != nil {
		return nil, err
	}
	return r, nil
}

// TestEventsRoundTrip: a source batch's events (null and empty keys,
// headers, positions) and the served list survive encoding.
func TestEventsRoundTrip(t *testing.T) {
	reg, err := testRegistry()
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.BatchCodec("flexiflow.demo.DigitPrediction")
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{"id": "r1", "label": int32(3), "predicted": int32(8), "confidence": 0.25}
	in := &Batch{ID: "b1", Workflow: "w", Tried: []string{}, Records: []map[string]any{rec, rec, rec},
		Events: []Event{
			{Key: []byte("k1"), Headers: []Header{{Key: "traceparent", Value: []byte("00-ab-cd-01")}, {Key: "empty", Value: []byte{}}}, Topic: "orders", Partition: 2, Offset: 41},
			{Key: nil, Topic: "orders", Partition: 2, Offset: 42},
			{Key: []byte{}, Topic: "orders", Partition: 0, Offset: 7},
		},
		Served: []string{"denoise=median", "classify=knn"}}
	b, err := c.Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 3 || string(out.Events[0].Key) != "k1" || out.Events[1].Key != nil || out.Events[2].Key == nil || len(out.Events[2].Key) != 0 {
		t.Fatalf("events %+v", out.Events)
	}
	if h := out.Events[0].Headers; len(h) != 2 || h[0].Key != "traceparent" || string(h[0].Value) != "00-ab-cd-01" {
		t.Errorf("headers %+v", h)
	}
	if e := out.Events[0]; e.Topic != "orders" || e.Partition != 2 || e.Offset != 41 {
		t.Errorf("position %+v", e)
	}
	if len(out.Served) != 2 || out.Served[1] != "classify=knn" {
		t.Errorf("served %v", out.Served)
	}
	plain, err := c.Encode(nil, &Batch{ID: "b2", Workflow: "w", Records: []map[string]any{rec}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decode(plain); err != nil || got.Events != nil || got.Served != nil {
		t.Errorf("a batch without events decodes to %+v, %v", got, err)
	}
}
