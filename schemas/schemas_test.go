package schemas

import (
	"errors"
	"strings"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	reg, err := NewRegistry()
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
	reg, _ := NewRegistry()
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
	reg, _ := NewRegistry()
	for _, s := range []string{`{`, `{"type": "enum", "name": "E", "symbols": ["A"]}`, `{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}`} {
		if _, err := reg.Add(s); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
	if _, err := reg.BatchCodec("no.Such"); err == nil || !strings.Contains(err.Error(), "flexiflow.demo.DigitImage") {
		t.Errorf("unknown record: %v", err)
	}
}
