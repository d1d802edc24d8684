package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestSourceToSink runs examples/fraud with a strict source on the
// embedded broker and on real Kafka: good events, in order per key, with
// bad ones among them. Every event key must appear exactly once across
// the sink and the source's dead-letter topic, each bad event with its
// reason and its original bytes, key and headers; per key, the sink keeps
// the events' order; a tombstone is skipped.
func TestSourceToSink(t *testing.T) {
	for _, backend := range streamtest.Backends(t) {
		t.Run(backend.Name, func(t *testing.T) {
			kafka := backend.Start(t)
			name := streamtest.Unique("edges")
			path := fraudWorkflow(t, name, true)
			l, err := compile(path, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			if !l.wf.Source.Strict {
				t.Fatal("the test workflow's source is not strict")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			pipe, err := pipeline.Start(ctx, l.steps, kafka, pipeline.CreateTopics(0), pipeline.WithEdges())
			if err != nil {
				t.Fatal(err)
			}
			defer pipe.Stop()

			// 40 customers with 15 orders each; every 37th event is bad in one
			// of the ways below; one tombstone.
			bad := []struct{ value, reason string }{
				{`{"id": "x", "amount": `, "not JSON"},
				{`{"id": "x", "country": "DE"}`, "field amount: missing"},
				{`{"id": "x", "amount": "ten", "country": "DE"}`, `field amount: got the string "ten", want a number (double)`},
				{`{"id": "x", "amount": 1, "country": "DE", "coupon": "X"}`, "fields coupon are not in the schema"},
				{`{"id": 7, "amount": 1, "country": "DE"}`, "field id: got the number 7, want a string"},
				{`{"id": "x", "amount": 1, "country": "` + strings.Repeat("A", 600<<10) + `"}`, "more than a batch may hold (source.batch.max_bytes 524288)"},
			}
			cl, err := kgo.NewClient(kafka.ClientOpts()...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			wantBad := map[string]string{}
			good := 0
			for i := 0; i < 600; i++ {
				cust := fmt.Sprintf("c%02d", i%40)
				key := fmt.Sprintf("%s/%03d", cust, i/40)
				h := []kgo.RecordHeader{{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))}, {Key: "customer", Value: []byte(cust)}}
				// Under 10000, so that no batch needs a retry: a retried batch
				// comes after the batches behind it, and order holds only without.
				v := fmt.Sprintf(`{"id": %q, "amount": %d.5, "country": "DE"}`, key, 100+i*37%9000)
				if i%37 == 5 {
					b := bad[(i/37)%len(bad)]
					v, wantBad[key] = b.value, b.reason
				} else {
					good++
				}
				// Keyed by customer: a customer's orders share a source partition.
				recs = append(recs, &kgo.Record{Topic: l.wf.Source.Topic, Key: []byte(cust), Value: []byte(v), Headers: append(h, kgo.RecordHeader{Key: "order", Value: []byte(key)})})
			}
			recs = append(recs, &kgo.Record{Topic: l.wf.Source.Topic, Key: []byte("c00"), Value: nil}) // a tombstone
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}

			rd, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics(l.wf.Sink.Topic, l.wf.Source.DLQ),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			seen := map[string]int{}
			last := map[string]string{} // customer -> last order delivered
			total := 0
			for total < 600 && ctx.Err() == nil {
				rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
					total++
					order := stream.Header(r, "order")
					seen[order]++
					if r.Topic == l.wf.Source.DLQ {
						reason, ok := wantBad[order]
						if !ok {
							t.Errorf("good event %s was dead-lettered: %s", order, stream.Header(r, stream.HeaderError))
						} else if e := stream.Header(r, stream.HeaderError); !strings.Contains(e, reason) {
							t.Errorf("dead letter %s: reason %q, want it to say %q", order, e, reason)
						}
						if string(r.Key) != stream.Header(r, "customer") || stream.Header(r, "traceparent") == "" || stream.Header(r, stream.HeaderSource) == "" {
							t.Errorf("dead letter %s lost its key or headers: key %q, headers %v", order, r.Key, r.Headers)
						}
						return
					}
					if _, isBad := wantBad[order]; isBad {
						t.Errorf("bad event %s reached the sink", order)
					}
					var v map[string]any
					if err := json.Unmarshal(r.Value, &v); err != nil || v["id"] != order {
						t.Errorf("sink record for %s: %s (%v)", order, r.Value, err)
					}
					cust := stream.Header(r, "customer")
					if string(r.Key) != cust {
						t.Errorf("sink record %s keyed %q, want the event's key %q", order, r.Key, cust)
					}
					if prev := last[cust]; prev != "" && order < prev {
						t.Errorf("customer %s: order %s delivered after %s", cust, order, prev)
					}
					last[cust] = order
				})
			}
			for i := 0; i < 600; i++ {
				order := fmt.Sprintf("c%02d/%03d", i%40, i/40)
				if seen[order] != 1 {
					t.Errorf("event %s came out %d times", order, seen[order])
				}
			}
			if got := pipe.Ingest.Tombstones.Load(); got != 1 {
				t.Errorf("%d tombstones counted, want 1", got)
			}
			t.Logf("%s: 600 events and a tombstone in; %d results on the sink, %d dead letters with reasons; per-customer order kept", backend.Name, good, len(wantBad))
		})
	}
}

// TestProduceAndConsumeCommands: what a user types. produce --from writes
// examples/fraud/events.jsonl to the source topic keyed by id, and consume
// prints one JSON line per result with its key and headers; a file with a
// bad line writes nothing and names the line.
func TestProduceAndConsumeCommands(t *testing.T) {
	b, err := stream.StartEmbedded("127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	const wf = "../../examples/fraud/workflow.yaml"
	l, err := compile(wf, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pipe, err := pipeline.Start(ctx, l.steps, stream.Config{Brokers: b.Addrs()}, pipeline.CreateTopics(0), pipeline.WithEdges())
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Stop()

	run := func(args ...string) (string, error) {
		var out strings.Builder
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetIn(strings.NewReader(`{"id": "bad", "amount": "much", "country": "DE"}` + "\n"))
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	if _, err := run("produce", "--workflow", wf, "--brokers", brokers, "--from", "-"); err == nil || !strings.Contains(err.Error(), `standard input:1: field amount: got the string "much", want a number (double) (nothing was written)`) {
		t.Errorf("a bad line: %v", err)
	}
	out, err := run("produce", "--workflow", wf, "--brokers", brokers, "--from", "../../examples/fraud/events.jsonl", "--key", "id")
	if err != nil || !strings.Contains(out, "produced 48 events to orders") {
		t.Fatalf("produce: %q, %v", out, err)
	}
	out, err = run("consume", "--workflow", wf, "--brokers", brokers, "--from-beginning", "-n", "48")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	keys := map[string]bool{}
	for _, line := range lines {
		var rec struct {
			Key     string            `json:"key"`
			Headers map[string]string `json:"headers"`
			Value   map[string]any    `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("consume printed %q: %v", line, err)
		}
		if rec.Value["id"] != rec.Key || rec.Headers[stream.HeaderModels] == "" {
			t.Errorf("consume printed %s", line)
		}
		if _, ok := rec.Value["hold"].(bool); !ok {
			t.Errorf("no decision in %s", line)
		}
		keys[rec.Key] = true
	}
	if len(lines) != 48 || len(keys) != 48 {
		t.Errorf("consume printed %d lines for %d keys, want 48 of each", len(lines), len(keys))
	}
}

// TestDeadLettersListShowReplay: a score step with only the model that
// fails large orders dead-letters their batches; dlq list shows them
// and the source's bad events as JSON; dlq show decodes one; after the
// workflow gains the bounded model, dlq replay sends them back, and a
// second replay sends nothing: every good event reaches the sink once.
func TestDeadLettersListShowReplay(t *testing.T) {
	b, err := stream.StartEmbedded("127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	kafka := stream.Config{Brokers: b.Addrs()}
	dir := t.TempDir()
	copyFraudSchemas(t, dir)
	full, err := os.ReadFile("../../examples/fraud/workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join(dir, "fixed.yaml")
	if err := os.WriteFile(fixed, full, 0o644); err != nil {
		t.Fatal(err)
	}
	// The broken workflow: score has only quick, which fails large orders.
	i := strings.Index(string(full), "      - name: bounded")
	j := strings.Index(string(full), "    assertions:")
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte(string(full[:i])+string(full[j:])), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(path string) *pipeline.Pipeline {
		l, err := compile(path, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.Start(ctx, l.steps, kafka, pipeline.CreateTopics(0), pipeline.WithEdges())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&out)
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	pipe := start(broken)
	cl, err := kgo.NewClient(kafka.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := 0; i < 40; i++ {
		v := fmt.Sprintf(`{"id": "o%02d", "amount": %d, "country": "DE"}`, i, 500+i*600) // from o16 on, above 10000
		recs = append(recs, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprintf("o%02d", i)), Value: []byte(v)})
	}
	recs = append(recs, &kgo.Record{Topic: "orders", Key: []byte("junk"), Value: []byte("not json")})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sink := map[string]int{}
	readSink := func(want int) {
		rd, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics("decisions"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		for k := range sink {
			delete(sink, k)
		}
		total := 0
		for total < want && ctx.Err() == nil {
			rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { sink[string(r.Key)]++; total++ })
		}
	}
	// Wait until every event is accounted for: on the sink or dead-lettered.
	var dls []map[string]any
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		dls = nil
		if err := json.Unmarshal([]byte(run("dlq", "list", "--workflow", broken, "--brokers", brokers, "--format", "json")), &dls); err != nil {
			t.Fatal(err)
		}
		events := 0
		for _, d := range dls {
			events += int(d["records"].(float64))
		}
		delivered, err := stream.ReadCommitted(ctx, kafka, "decisions")
		if err != nil {
			t.Fatal(err)
		}
		if events+len(delivered) == 41 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute %d events are dead-lettered and %d delivered, of 41", events, len(delivered))
		}
	}
	var source, step int
	var batch string
	for _, d := range dls {
		switch d["step"] {
		case "source":
			source++
			if d["batch_id"] != nil || d["keys"].([]any)[0] != "junk" || !strings.Contains(d["reason"].(string), "not JSON") {
				t.Errorf("source dead letter %v", d)
			}
		case "score":
			step++
			batch = d["batch_id"].(string)
			if len(d["keys"].([]any)) != int(d["records"].(float64)) || !strings.Contains(d["reason"].(string), "probability") {
				t.Errorf("step dead letter %v", d)
			}
		default:
			t.Errorf("dead letter of step %v: %v", d["step"], d)
		}
	}
	if source != 1 || step == 0 {
		t.Fatalf("%d source and %d step dead letters: %v", source, step, dls)
	}
	if out := run("dlq", "show", "--workflow", broken, "--brokers", brokers, batch); !strings.Contains(out, `"records"`) || !strings.Contains(out, `"tried"`) {
		t.Errorf("dlq show %s: %s", batch, out)
	}
	if err := pipe.Stop(); err != nil {
		t.Fatal(err)
	}

	pipe = start(fixed)
	defer pipe.Stop()
	if out := run("dlq", "replay", "--workflow", fixed, "--brokers", brokers, "--step", "score", "--all"); !strings.Contains(out, fmt.Sprintf("replayed %d dead letters", step)) {
		t.Errorf("first replay: %s", out)
	}
	if out := run("dlq", "replay", "--workflow", fixed, "--brokers", brokers, "--step", "score", "--all"); !strings.Contains(out, fmt.Sprintf("replayed 0 dead letters of step score to fraud.score.in; %d already replayed", step)) {
		t.Errorf("second replay: %s", out)
	}
	readSink(40)
	for i := 0; i < 40; i++ {
		if k := fmt.Sprintf("o%02d", i); sink[k] != 1 {
			t.Errorf("order %s reached the sink %d times", k, sink[k])
		}
	}
}

// fraudWorkflow writes examples/fraud under the workflow name name, with
// source and sink topics of its own (name.orders, name.decisions), and a
// strict source when strict is set.
func fraudWorkflow(t *testing.T, name string, strict bool) string {
	t.Helper()
	text, err := os.ReadFile("../../examples/fraud/workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := regexp.MustCompile(`(?m)^workflow: fraud$`).ReplaceAllString(string(text), "workflow: "+name)
	y = strings.NewReplacer("topic: orders", "topic: "+name+".orders", "topic: decisions", "topic: "+name+".decisions").Replace(y)
	if strict {
		y = strings.Replace(y, "format: json\n  batch:", "format: json\n  strict: true\n  batch:", 1)
	}
	dir := t.TempDir()
	copyFraudSchemas(t, dir)
	path := filepath.Join(dir, "wf.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEdgesCrashRecovery runs ingest, both steps and egress as separate
// processes on real Kafka, kills ingest and egress with SIGKILL three
// times each while 3,000 events flow, restarts each a second later, and
// checks that every event reaches the sink exactly once.
func TestEdgesCrashRecovery(t *testing.T) {
	brokers := realKafka(t)
	name := streamtest.Unique("edgecrash")
	wf := fraudWorkflow(t, name, false)
	const n, parts = 3000, 6
	dir := t.TempDir()
	for p := 0; p < parts; p++ {
		var lines strings.Builder
		for i := p * n / parts; i < (p+1)*n/parts; i++ {
			fmt.Fprintf(&lines, `{"id": "o%05d", "amount": %d.25, "country": "FR"}`+"\n", i, 10+i*7919%20000)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part%d.jsonl", p)), []byte(lines.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ingest := startProc(t, "ingest", "--workflow", wf, "--brokers", brokers, "--instance-id", "x")
	egress := startProc(t, "egress", "--workflow", wf, "--brokers", brokers, "--instance-id", "x")
	startProc(t, "stage", "--workflow", wf, "--step", "score", "--brokers", brokers, "--instance-id", "x")
	startProc(t, "stage", "--workflow", wf, "--step", "decide", "--brokers", brokers, "--instance-id", "x")
	// A sixth of the events, then a kill, six times: the kills land while
	// events flow. The killed role restarts a second later.
	for k := 0; k < parts; k++ {
		if out, stderr, err := run(t, time.Minute, "produce", "--workflow", wf, "--brokers", brokers, "--from", filepath.Join(dir, fmt.Sprintf("part%d.jsonl", k)), "--key", "id"); err != nil {
			t.Fatalf("produce: %v\n%s%s", err, out, stderr)
		}
		time.Sleep(time.Duration(100+k*80) * time.Millisecond)
		victim := []*proc{ingest, egress}[k%2]
		victim.stop(syscall.SIGKILL)
		time.Sleep(time.Second)
		victim.start()
	}
	kafka := stream.Config{Brokers: strings.Split(brokers, ",")}
	seen := map[string]int{}
	total := 0
	for deadline := time.Now().Add(3 * time.Minute); total < n && time.Now().Before(deadline); {
		recs, err := stream.ReadCommitted(context.Background(), kafka, name+".decisions", name+".source.dlq", name+".score.dlq", name+".decide.dlq")
		if err != nil {
			t.Fatal(err)
		}
		total = len(recs)
		if total >= n {
			for _, r := range recs {
				if r.Topic != name+".decisions" {
					t.Errorf("event %s was dead-lettered to %s: %s", r.Key, r.Topic, stream.Header(r, stream.HeaderError))
				}
				seen[string(r.Key)]++
			}
			break
		}
		time.Sleep(time.Second)
	}
	lost, dup := 0, 0
	for i := 0; i < n; i++ {
		switch c := seen[fmt.Sprintf("o%05d", i)]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
	}
	t.Logf("ingest and egress SIGKILLed 3 times each: %d events, %d records read, %d lost, %d duplicated", n, total, lost, dup)
	if lost != 0 || dup != 0 {
		t.Errorf("exactly-once violated: %d lost, %d duplicated", lost, dup)
	}
}

// TestProduceCSV: produce --from takes CSV too: a header, then one event
// per row, cells typed by the schema; a bad cell names its line.
func TestProduceCSV(t *testing.T) {
	b, err := stream.StartEmbedded("127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	run := func(in string) (string, error) {
		var out strings.Builder
		root := newRoot()
		root.SetArgs([]string{"produce", "--workflow", "../../examples/fraud/workflow.yaml", "--brokers", brokers, "--from", "-", "--key", "id"})
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetIn(strings.NewReader(in))
		err := root.Execute()
		return out.String(), err
	}
	if out, err := run("id,amount,country\no1,12.5,DE\n\"o2\",7,\"FR, metro\"\n"); err != nil || !strings.Contains(out, "produced 2 events to orders") {
		t.Fatalf("%q, %v", out, err)
	}
	if _, err := run("id,amount,country\no1,12.5,DE\no2,lots,FR\n"); err == nil || !strings.Contains(err.Error(), `standard input:3: field amount: got the string "lots", want a number (double)`) {
		t.Errorf("bad cell: %v", err)
	}
	recs, err := stream.ReadCommitted(context.Background(), stream.Config{Brokers: b.Addrs()}, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records on orders, want the 2 of the good file", len(recs))
	}
	for _, r := range recs {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil || v["id"] != string(r.Key) {
			t.Errorf("record %s: %s", r.Key, r.Value)
		}
		if r.Key != nil && string(r.Key) == "o2" && (v["amount"] != 7.0 || v["country"] != "FR, metro") {
			t.Errorf("o2 became %v", v)
		}
	}
}

// copyFraudSchemas puts examples/fraud's schemas beside a test's copy of
// its workflow.
func copyFraudSchemas(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"order.avsc", "scored.avsc", "decision.avsc"} {
		b, err := os.ReadFile(filepath.Join("../../examples/fraud", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
