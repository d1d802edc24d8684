package stages_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestRouting drives one batch through a step whose models are tried in
// workflow order, and checks where it ends, with which headers, and the
// trace of every attempt.
func TestRouting(t *testing.T) {
	cases := []struct {
		name       string
		models     string
		wantTopic  string // suffix: out or dlq
		wantTried  string
		wantTraces []string // verdict/outcome per attempt
		wantErr    string   // substring of flexiflow-error on dead letters
	}{
		{"pass goes to the next topic", "good,bad", ".out", "good", []string{"pass/next"}, ""},
		{"fail retries with the next model", "bad,good", ".out", "bad,good", []string{"fail/retry", "pass/next"}, ""},
		{"exhausted goes to the dlq", "bad,garbage", ".dlq", "bad,garbage", []string{"fail/retry", "fail/dlq"}, "could not be evaluated"},
		{"panic is a failed attempt", "boom,good", ".out", "boom,good", []string{"error/retry", "pass/next"}, ""},
		{"timeout is a failed attempt", "hang,good", ".out", "hang,good", []string{"error/retry", "pass/next"}, ""},
		{"wrong record count is a failed attempt", "short", ".dlq", "short", []string{"error/dlq"}, "returned 0 records for 4 inputs"},
		{"timeout reason reaches the dlq", "bad,hang", ".dlq", "bad,hang", []string{"fail/retry", "error/dlq"}, "timed out after 200ms"},
	}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					e := startEnv(t, b, oneStep(c.models, 1), true)
					e.checkRoute(c.wantTopic, c.wantTried, c.wantErr, c.wantTraces)
				})
			}
		})
	}
}

// checkRoute sends one batch and checks where it ends and its traces.
func (e *env) checkRoute(wantTopic, wantTried, wantErr string, wantTraces []string) {
	t := e.t
	ids := e.produce(1, 4)
	step := e.wf.Steps[0]
	got := e.collect(1, e.wf.Topics.Out, step.Topics.DLQ)
	if len(got) != 1 {
		t.Fatalf("want the batch in exactly one of out/dlq, got %d records", len(got))
	}
	r := got[0]
	if !strings.HasSuffix(r.Topic, wantTopic) {
		t.Errorf("batch went to %s, want *%s", r.Topic, wantTopic)
	}
	if h := header(r, stream.HeaderBatchID); h != ids[0] {
		t.Errorf("batch id header %q, want %q", h, ids[0])
	}
	if h := header(r, stream.HeaderTried); h != wantTried {
		t.Errorf("tried header %q, want %q", h, wantTried)
	}
	if h := header(r, stream.HeaderAttempt); h != strconv.Itoa(len(wantTraces)) {
		t.Errorf("attempt header %q, want %d", h, len(wantTraces))
	}
	errH := header(r, stream.HeaderError)
	if wantErr != "" && !strings.Contains(errH, wantErr) {
		t.Errorf("error header %q does not mention %q", errH, wantErr)
	}
	if wantTopic == ".out" {
		if errH != "" {
			t.Errorf("delivered batch carries an error header: %q", errH)
		}
		b, err := e.scored.Decode(r.Value)
		if err != nil {
			t.Fatalf("output does not decode as Scored: %v", err)
		}
		if len(b.Records) != 4 || b.ID != ids[0] {
			t.Errorf("output batch %s has %d records, want 4", b.ID, len(b.Records))
		}
	}
	traces := e.traces(len(wantTraces))
	var verdicts []string
	for _, tr := range traces {
		verdicts = append(verdicts, tr.Verdict+"/"+tr.Outcome)
	}
	if strings.Join(verdicts, " ") != strings.Join(wantTraces, " ") {
		t.Errorf("traces %v, want %v", verdicts, wantTraces)
	}
	for i, tr := range traces {
		if tr.Attempt != i+1 || tr.BatchID != ids[0] || tr.Records != 4 {
			t.Errorf("trace %d: attempt %d batch %s records %d", i, tr.Attempt, tr.BatchID, tr.Records)
		}
		if tr.Verdict != schemas.VerdictPass && tr.Error == "" {
			t.Errorf("trace %d: failed attempt without a reason", i)
		}
		if len(tr.Features) == 0 {
			t.Errorf("trace %d: no input feature summaries", i)
		}
	}
}

// TestPoisonInput sends bytes that are not Avro, and a valid Avro message of
// a schema the step does not read; both must reach the DLQ with a reason
// while the stage goes on to deliver the good batch behind them.
func TestPoisonInput(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testPoison(t, b) })
	}
}

func testPoison(t *testing.T, b streamtest.Backend) {
	e := startEnv(t, b, oneStep("good", 1), true)
	step := e.wf.Steps[0]
	cl, err := kgo.NewClient(append(e.kafka.ClientOpts(), kgo.DefaultProduceTopic(step.Topics.In))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	e.send(cl, &kgo.Record{Key: []byte("p1"), Value: []byte("{\"not\": \"avro\"}"), Partition: 0})
	wrong, err := e.scored.Encode(nil, &schemas.Batch{ID: "p2", Workflow: "t"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(cl, &kgo.Record{Key: []byte("p2"), Value: wrong, Headers: stream.Headers("p2", 0, nil, "")})
	// A batch of no records is dead-lettered (docs: failure behaviour).
	empty, err := e.item.Encode(nil, &schemas.Batch{ID: "p3", Workflow: e.wf.Name})
	if err != nil {
		t.Fatal(err)
	}
	e.send(cl, &kgo.Record{Key: []byte("p3"), Value: empty, Headers: stream.Headers("p3", 0, nil, "")})
	ids := e.produce(1, 3)

	got := e.collect(4, e.wf.Topics.Out, step.Topics.DLQ)
	where := map[string]*kgo.Record{}
	for _, r := range got {
		where[string(r.Key)] = r
	}
	if len(got) != 4 {
		t.Fatalf("want 4 records across out and dlq, got %d", len(got))
	}
	if p3 := where["p3"]; p3 == nil || p3.Topic != step.Topics.DLQ || !strings.Contains(header(p3, stream.HeaderError), "the batch has no records") {
		t.Errorf("empty batch: want DLQ with 'the batch has no records', got %+v", p3)
	}
	p1, p2, good := where["p1"], where["p2"], where[ids[0]]
	if p1 == nil || p1.Topic != step.Topics.DLQ || !strings.Contains(header(p1, stream.HeaderError), "not Avro single-object encoded") {
		t.Errorf("garbage bytes: want DLQ with 'not Avro single-object encoded', got %+v", p1)
	}
	if p1 != nil && string(p1.Value) != "{\"not\": \"avro\"}" {
		t.Errorf("dead letter must keep the original bytes, got %q", p1.Value)
	}
	if p2 == nil || p2.Topic != step.Topics.DLQ || !strings.Contains(header(p2, stream.HeaderError), "unknown schema fingerprint") {
		t.Errorf("wrong schema: want DLQ with 'unknown schema fingerprint', got %+v", p2)
	}
	if p2 != nil && header(p2, stream.HeaderBatchID) != "p2" {
		t.Errorf("dead letter lost its batch id header")
	}
	if good == nil || good.Topic != e.wf.Topics.Out {
		t.Errorf("the good batch behind the poison was not delivered: %+v", good)
	}
	var poison int
	for _, tr := range e.traces(4) {
		if tr.Verdict == schemas.VerdictPoison {
			poison++
		}
	}
	if poison != 3 {
		t.Errorf("want 3 poison traces, got %d", poison)
	}
}

// TestEveryBatchEndsOnce sends many batches through two steps with a model
// that passes about half the records, and checks that each batch id appears
// exactly once across the output and every dead-letter topic.
func TestEveryBatchEndsOnce(t *testing.T) {
	yaml := `workflow: two
input_schema: flexiflow.test.Item
schemas: [item.avsc, scored.avsc]
partitions: 3
steps:
  - name: first
    output_schema: flexiflow.test.Item
    assertions:
      records: [{name: ok, expr: "true"}]
    models:
      - {name: echo, builtin: good}
  - name: second
    output_schema: flexiflow.test.Scored
    assertions:
      records: [{name: high, expr: output.score >= 0.5}]
      batch: {min_pass_fraction: 0.5}
    models:
      - {name: f1, builtin: flaky}
      - {name: f2, builtin: bad}
      - {name: f3, builtin: good}
`
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testEndsOnce(t, b, yaml) })
	}
}

func testEndsOnce(t *testing.T, b streamtest.Backend, yaml string) {
	e := startEnv(t, b, yaml, false)
	const n = 300
	ids := e.produce(n, 5)
	topics := []string{e.wf.Topics.Out}
	for _, s := range e.wf.Steps {
		topics = append(topics, s.Topics.DLQ)
	}
	got := e.collect(n, topics...)
	seen := map[string]int{}
	for _, r := range got {
		seen[header(r, stream.HeaderBatchID)]++
	}
	lost, dup := 0, 0
	for _, id := range ids {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost != 0 || dup != 0 || len(got) != n {
		t.Errorf("produced %d, got %d records: %d lost, %d duplicated", n, len(got), lost, dup)
	}
}
