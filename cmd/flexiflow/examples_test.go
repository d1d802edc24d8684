package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stream"
)

// TestExamples loads and compiles every workflow under examples/, as
// `flexiflow run` would, and runs each one that ships its events
// (events.jsonl: one input record per line, as JSON) on the embedded
// broker: every event must come out of the last step, once. The demo
// workflow is run by the demo's own tests, and the served one, which
// needs MLServer, by stages/models/kserve's end-to-end test.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("found %d example workflows (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			l, err := compile(f, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			events := filepath.Join(filepath.Dir(f), "events.jsonl")
			if _, err := os.Stat(events); err != nil {
				t.Logf("%s compiles (%d steps); it ships no events.jsonl, so it is run elsewhere", f, len(l.steps))
				return
			}
			runExample(t, l, events)
		})
	}
}

func runExample(t *testing.T, l *loaded, eventsFile string) {
	data, err := os.ReadFile(eventsFile)
	if err != nil {
		t.Fatal(err)
	}
	in := l.steps[0].In
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s:%d: %v", eventsFile, line, err)
		}
		recs = append(recs, r)
	}
	b, err := stream.StartEmbedded("127.0.0.1:0", l.wf.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kafka := stream.Config{Brokers: b.Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pipe, err := pipeline.Start(ctx, l.steps, kafka, pipeline.CreateTopics(0), pipeline.WithEdges())
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Stop()
	if l.wf.Source != nil && l.wf.Sink != nil {
		runEvents(ctx, t, l, kafka, recs)
		return
	}

	cl, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.DefaultProduceTopic(l.wf.Steps[0].Topics.In))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const size = 4
	batches := 0
	for i := 0; i < len(recs); i += size {
		id := fmt.Sprintf("ex%04d", batches)
		v, err := in.Encode(nil, &schemas.Batch{ID: id, Workflow: l.wf.Name, CreatedAtMs: time.Now().UnixMilli(), Records: recs[i:min(i+size, len(recs))]})
		if err != nil {
			t.Fatalf("encoding events %d..: %v", i, err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: v, Headers: stream.Headers(id, 0, nil, "")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		batches++
	}

	topics := []string{l.wf.Topics.Out}
	for _, s := range l.wf.Steps {
		topics = append(topics, s.Topics.DLQ)
	}
	rd, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics(topics...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	out := l.steps[len(l.steps)-1].Out
	seen := map[string]bool{}
	delivered := 0
	for len(seen) < batches && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Topic != l.wf.Topics.Out {
				t.Errorf("batch %s was dead-lettered to %s: %s", r.Key, r.Topic, stream.Header(r, stream.HeaderError))
				seen[string(r.Key)] = true
				return
			}
			b, err := out.Decode(r.Value)
			if err != nil {
				t.Errorf("decoding delivered batch %s: %v", r.Key, err)
				return
			}
			if seen[b.ID] {
				t.Errorf("batch %s delivered twice", b.ID)
			}
			seen[b.ID] = true
			delivered += len(b.Records)
		})
	}
	if len(seen) != batches || delivered != len(recs) {
		t.Fatalf("%d of %d batches came out (%d of %d events delivered)", len(seen), batches, delivered, len(recs))
	}
	t.Logf("%s: %d events in %d batches, all delivered", l.wf.Name, len(recs), batches)
}

// runEvents writes the events to the workflow's source topic, keyed by
// their id, and reads the sink: every event must come out once, keyed as
// it went in, with its headers and the models that served it.
func runEvents(ctx context.Context, t *testing.T, l *loaded, kafka stream.Config, recs []map[string]any) {
	cl, err := kgo.NewClient(kafka.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, r := range recs {
		v, _ := json.Marshal(r)
		rec := &kgo.Record{Topic: l.wf.Source.Topic, Key: []byte(fmt.Sprint(r["id"])), Value: v,
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics(l.wf.Sink.Topic, l.wf.Source.DLQ), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	for len(seen) < len(recs) && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Topic != l.wf.Sink.Topic {
				t.Errorf("event %s was dead-lettered: %s", r.Key, stream.Header(r, stream.HeaderError))
			}
			seen[string(r.Key)]++
			var v map[string]any
			if err := json.Unmarshal(r.Value, &v); err != nil || v["id"] != string(r.Key) {
				t.Errorf("sink record %s: value %s (%v), want the decision for that order", r.Key, r.Value, err)
			}
			if !strings.HasPrefix(stream.Header(r, "traceparent"), "00-") || stream.Header(r, stream.HeaderBatchID) == "" || stream.Header(r, stream.HeaderSource) == "" {
				t.Errorf("sink record %s lost its headers: %v", r.Key, r.Headers)
			}
			if m := stream.Header(r, stream.HeaderModels); !strings.HasPrefix(m, "score=") || !strings.HasSuffix(m, ",decide=threshold") {
				t.Errorf("sink record %s: flexiflow-models %q", r.Key, m)
			}
		})
	}
	for _, r := range recs {
		if n := seen[fmt.Sprint(r["id"])]; n != 1 {
			t.Errorf("event %v came out %d times", r["id"], n)
		}
	}
	t.Logf("%s: %d events in, %d results out on %s, one per event", l.wf.Name, len(recs), len(seen), l.wf.Sink.Topic)
}
