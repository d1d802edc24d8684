package stages

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/bench/throughput/noop"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
)

// The hot path of one batch, piece by piece, on the throughput benchmark's
// shape: 100 records of 1 KB each, a model that returns its input and one
// trivial assertion. Compare runs with benchstat:
//
//	go test -run '^$' -bench 'Hot' -benchmem -count 10 ./stages/ > new.txt
//	benchstat old.txt new.txt

// hotFixture is a compiled step and one encoded batch for it.
type hotFixture struct {
	step  *Step
	batch *schemas.Batch
	value []byte
}

func newHotFixture(b *testing.B) hotFixture {
	b.Helper()
	wf, err := noop.Workflow("hot", 1)
	if err != nil {
		b.Fatal(err)
	}
	reg := noop.Models()
	sreg, err := noop.Schemas()
	if err != nil {
		b.Fatal(err)
	}
	steps, err := Compile(wf, Deps{Models: reg, Schemas: sreg})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	batch := &schemas.Batch{ID: "b1", Workflow: "hot", CreatedAtMs: time.Now().UnixMilli(), Records: make([]map[string]any, 100)}
	for j := range batch.Records {
		batch.Records[j] = map[string]any{"id": fmt.Sprintf("r%d", j), "payload": payload}
	}
	value, err := steps[0].In.Encode(nil, batch)
	if err != nil {
		b.Fatal(err)
	}
	return hotFixture{step: steps[0], batch: batch, value: value}
}

func BenchmarkHotDecode(b *testing.B) {
	f := newHotFixture(b)
	b.SetBytes(int64(len(f.value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.step.In.Decode(f.value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHotAssert(b *testing.B) {
	f := newHotFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if res := f.step.Asserts.Evaluate(f.batch.Records, f.batch.Records); !res.Verdict {
			b.Fatal(res.Reason)
		}
	}
}

func BenchmarkHotEncode(b *testing.B) {
	f := newHotFixture(b)
	buf := make([]byte, 0, len(f.value)+len(f.value)/4+512) // the stage reuses its buffers
	b.SetBytes(int64(len(f.value)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = f.step.Out.Encode(buf[:0], f.batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHotProcess is the whole path of one batch through a stage, with
// no broker: decode, rank, invoke, assert, encode, route, trace.
func BenchmarkHotProcess(b *testing.B) {
	f := newHotFixture(b)
	s, err := NewStage(f.step, stream.Config{})
	if err != nil {
		b.Fatal(err)
	}
	rec := &kgo.Record{Topic: "hot.noop.in", Key: []byte("b1"), Value: f.value, Headers: stream.Headers("b1", 0, nil, "")}
	ctx := context.Background()
	b.SetBytes(int64(len(f.value)))
	b.ReportAllocs()
	for b.Loop() {
		out, rt, err := s.process(ctx, rec)
		if err != nil || rt.outcome != schemas.OutcomeNext || len(out) != 2 {
			b.Fatalf("process: outcome %q, %d records, %v", rt.outcome, len(out), err)
		}
		s.recycle(out[0]) // as the stage does once Kafka acknowledges the record
	}
}

// BenchmarkHotRoute is routing alone: building the routed record (here a
// retry, which re-encodes the batch) and encoding its trace.
func BenchmarkHotRoute(b *testing.B) {
	f := newHotFixture(b)
	s, err := NewStage(f.step, stream.Config{})
	if err != nil {
		b.Fatal(err)
	}
	rec := &kgo.Record{Topic: "hot.noop.in", Key: []byte("b1"), Value: f.value}
	batch := *f.batch
	batch.Step, batch.Attempt, batch.Tried = "noop", 1, []string{"noop"}
	trace := &schemas.Trace{AttemptID: "b1/noop/1", BatchID: "b1", Workflow: "hot", Step: "noop", Model: "noop",
		Attempt: 1, Records: 100, Verdict: schemas.VerdictFail, Outcome: schemas.OutcomeRetry, Error: "has-id failed"}
	b.ReportAllocs()
	for b.Loop() {
		out := s.emit(rec, &batch, trace, nil)
		if len(out) != 2 || out[0].Topic != f.step.Spec.Topics.Retry || out[1] == nil {
			b.Fatalf("emit: %+v", out)
		}
		s.recycle(out[0])
	}
}
