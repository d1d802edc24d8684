package kserve_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/sinks/summary"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestServedModelsSwitchOnDrift runs a workflow whose classify step has
// three models served by a real MLServer (REST, gRPC, gRPC with binary
// tensors) over Kafka, fed by the demo's drifting digit stream: the step
// must start on the cheap logistic regression and switch to the robust
// network when the images drift, and every batch must end exactly once in
// the output or a dead-letter topic.
func TestServedModelsSwitchOnDrift(t *testing.T) {
	needServer(t)
	data, err := os.ReadFile("../../../examples/served-digits/workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			name := streamtest.Unique("served")
			wf, err := workflow.Parse("examples/served-digits/workflow.yaml",
				regexp.MustCompile(`(?m)^workflow: served-digits$`).ReplaceAll(data, []byte("workflow: "+name)))
			if err != nil {
				t.Fatal(err)
			}
			const total = 450
			r, _ := runWorkflow(t, b.Start(t), wf, total, nil)
			var table strings.Builder
			r.WriteTable(&table)
			t.Log(table.String())

			if r.Produced != total || r.Lost != 0 || r.Duplicates != 0 || r.Delivered+r.DeadLettered != total {
				t.Errorf("bookkeeping: produced %d, delivered %d, dead-lettered %d, lost %d, duplicates %d",
					r.Produced, r.Delivered, r.DeadLettered, r.Lost, r.Duplicates)
			}
			s := r.Steps[0]
			if got := s.Phases[0].Leader; got != "logreg" {
				t.Errorf("leader at the end of the clean phase is %q, want the cheap logreg", got)
			}
			if got := s.Phases[2].Leader; got != "mlp" {
				t.Errorf("leader at the end of the storm phase is %q, want the robust mlp", got)
			}
			if len(s.Switches) == 0 {
				t.Errorf("the step never switched its top-ranked model")
			}
			for _, p := range r.Phases {
				if p.DeliveredFraction < 0.9 {
					t.Errorf("phase %s delivered only %.0f%% of its batches", p.Name, 100*p.DeliveredFraction)
				}
			}
		})
	}
}

// runWorkflow runs wf's steps on kafka, produces total batches of the demo's
// drifting digits into it (a window of 16 in flight, so the drift arrives
// at the pace the step consumes it), and returns the report once every
// batch has ended somewhere, with the collector for the traces.
func runWorkflow(t *testing.T, kafka stream.Config, wf *workflow.Workflow, total int, opts []stages.Option) (*summary.Report, *summary.Collector) {
	t.Helper()
	c, err := demo.Compile(wf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prod, err := demo.NewProducer(c.Digits, wf, c.Schemas, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := pipeline.Start(ctx, c.Steps, kafka, pipeline.CreateTopics(0), pipeline.StageOptions(opts...))
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Stop()
	col, err := summary.NewCollector(demo.Summary(wf), kafka, summary.Options{
		PhaseOf: demo.PhaseOf(total), Quality: demo.Accuracy, Out: c.Steps[len(c.Steps)-1].Out,
	})
	if err != nil {
		t.Fatal(err)
	}
	colCtx, colCancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = col.Run(colCtx) }()
	defer wg.Wait()
	defer colCancel()

	start := time.Now()
	produced, err := prod.Produce(ctx, kafka, total, func(i int) {
		for ctx.Err() == nil {
			if d, dl := col.Finished(); i-(d+dl) < 16 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if d, dl := col.Finished(); d+dl >= total {
			break
		}
		if err := pipe.Err(); err != nil {
			t.Fatalf("a stage failed: %v", err)
		}
		if ctx.Err() != nil {
			d, dl := col.Finished()
			t.Fatalf("timed out with %d of %d batches finished", d+dl, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(start)
	colCancel()
	wg.Wait()
	if err := pipe.Stop(); err != nil {
		t.Fatal(err)
	}
	r := col.Report(produced, demo.PhaseNames(total), wall)
	return &r, col
}

// inOrder is a policy that always tries a step's models in workflow order,
// so a fault test knows which model takes the first attempt.
type inOrder struct{ k int }

func (p inOrder) Rank(dst []int) []int {
	dst = dst[:0]
	for i := 0; i < p.k; i++ {
		dst = append(dst, i)
	}
	return dst
}
func (inOrder) Observe(int, bool, float64) {}
func (p inOrder) Estimates(dst []bandit.Estimate) []bandit.Estimate {
	dst = dst[:0]
	for i := 0; i < p.k; i++ {
		dst = append(dst, bandit.Estimate{PassProb: 0.5, Cost: 1})
	}
	return dst
}

// faultWorkflow is a one-step workflow whose first model is the faulty one
// (its YAML given) and whose second is the healthy served network.
func faultWorkflow(t *testing.T, name, faulty string) *workflow.Workflow {
	t.Helper()
	y := fmt.Sprintf(`workflow: %s
input_schema: flexiflow.demo.DigitImage
partitions: 1
steps:
  - name: classify
    output_schema: flexiflow.demo.DigitPrediction
    models:
      - %s
      - name: mlp
        kind: kserve-v2
        url: %s
        model: digits-mlp
        inputs: [{tensor: input-0, fields: [pixels]}]
        outputs: [{tensor: predict, field: predicted}, {tensor: predict_proba, field: confidence, reduce: max}]
        carry: [id, label]
    assertions:
      records: [{name: digit, expr: "output.predicted >= 0 && output.predicted <= 9"}]
`, name, faulty, restURL)
	wf, err := workflow.Parse(name+".yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return wf
}

const mapping = `inputs: [{tensor: input-0, fields: [pixels]}], outputs: [{tensor: predict, field: predicted}, {tensor: predict_proba, field: confidence, reduce: max}], carry: [id, label]`

// TestServedFaults runs batches through a stage whose first-ranked model
// meets a real fault of the real server. Every first attempt must fail with
// the precise reason in its trace, the batch must move to the next model
// (which passes it), and nothing may crash.
func TestServedFaults(t *testing.T) {
	needServer(t)
	cases := []struct {
		name   string
		model  string   // the faulty model's YAML (flow style)
		want   []string // in every first attempt's trace error
		before func(t *testing.T)
		after  func(t *testing.T)
	}{
		{name: "server down (REST)",
			model: `{name: faulty, kind: kserve-v2, url: "http://127.0.0.1:1", model: digits-mlp, retries: 1, breaker: {failures: -1}, ` + mapping + `}`,
			want:  []string{`model "faulty" failed`, "server unreachable", "connection refused", "after 1 retries"}},
		{name: "server down (gRPC)",
			model: `{name: faulty, kind: kserve-v2, protocol: grpc, url: "127.0.0.1:1", model: digits-mlp, retries: 1, breaker: {failures: -1}, ` + mapping + `}`,
			want:  []string{`model "faulty" failed`, "Unavailable", "connection refused"}},
		{name: "model unloaded",
			model:  `{name: faulty, kind: kserve-v2, url: "` + restURL + `", model: digits-spare, ` + mapping + `}`,
			want:   []string{`model "faulty" failed`, "digits-spare", "404 Not Found", "is the model loaded"},
			before: func(t *testing.T) { post(t, "/v2/repository/models/digits-spare/unload") },
			after:  func(t *testing.T) { post(t, "/v2/repository/models/digits-spare/load") }},
		{name: "HTTP 500",
			model: `{name: faulty, kind: kserve-v2, url: "` + restURL + `", model: digits-broken, ` + mapping + `}`,
			want:  []string{`model "faulty" failed`, "500 Internal Server Error", "fails every request"}},
		{name: "slower than the timeout",
			model: `{name: faulty, kind: kserve-v2, protocol: grpc, url: "` + grpcURL + `", model: digits-slow, timeout: 300ms, ` + mapping + `}`,
			want:  []string{`model "faulty" timed out after 300ms`}},
		{name: "wrong output shape",
			model: `{name: faulty, kind: kserve-v2, url: "` + restURL + `", model: digits-mlp, inputs: [{tensor: input-0, fields: [pixels]}], outputs: [{tensor: predict_proba, field: predicted}], carry: [id, label]}`,
			want:  []string{`model "faulty" failed`, `output tensor "predict_proba" has shape [32 10], want [32] or [32 1]`}},
		{name: "circuit open",
			model: `{name: faulty, kind: kserve-v2, url: "http://127.0.0.1:1", model: digits-mlp, retries: 0, breaker: {failures: 2, cooldown: 1m}, ` + mapping + `}`,
			want:  []string{`model "faulty" failed`, "http://127.0.0.1:1"}},
	}
	const total = 6
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(t)
			}
			if tc.after != nil {
				defer tc.after(t)
			}
			kafka := streamtest.Backends(t)[0].Start(t) // the embedded broker
			wf := faultWorkflow(t, streamtest.Unique("faults"), tc.model)
			r, col := runWorkflow(t, kafka, wf, total, []stages.Option{stages.WithPolicy(inOrder{k: 2})})
			if r.Delivered != total || r.Lost != 0 || r.Duplicates != 0 {
				t.Errorf("delivered %d of %d (dead-lettered %d, lost %d, duplicates %d); the healthy model should have passed every batch",
					r.Delivered, total, r.DeadLettered, r.Lost, r.Duplicates)
			}
			byBatch := map[string][]*schemas.Trace{}
			for _, tr := range col.Traces("classify") {
				byBatch[tr.BatchID] = append(byBatch[tr.BatchID], tr)
			}
			opened := 0
			for id, trs := range byBatch {
				if len(trs) != 2 {
					t.Errorf("batch %s: %d attempts, want 2 (faulty, then mlp)", id, len(trs))
					continue
				}
				first, second := trs[0], trs[1]
				if first.Attempt != 1 {
					first, second = second, first
				}
				if first.Model != "faulty" || first.Verdict != schemas.VerdictError || first.Outcome != schemas.OutcomeRetry {
					t.Errorf("batch %s attempt 1: model %s verdict %s outcome %s, want faulty/error/retry", id, first.Model, first.Verdict, first.Outcome)
				}
				for _, w := range tc.want {
					if !strings.Contains(first.Error, w) {
						t.Errorf("batch %s: trace error %q does not say %q", id, first.Error, w)
					}
				}
				// Any fault that persists opens the circuit after its failures
				// (default 5), so a late batch may meet it in every case.
				if strings.Contains(first.Error, "circuit open") {
					opened++
					precise := `model "faulty" failed: circuit open: model down since`
					if !strings.Contains(first.Error, precise) || !strings.Contains(first.Error, "retrying after") {
						t.Errorf("batch %s: the open circuit's reason is imprecise: %q", id, first.Error)
					}
				}
				if second.Model != "mlp" || second.Verdict != schemas.VerdictPass || second.Outcome != schemas.OutcomeNext {
					t.Errorf("batch %s attempt 2: model %s verdict %s outcome %s error %q, want mlp/pass/next", id, second.Model, second.Verdict, second.Outcome, second.Error)
				}
			}
			last := ""
			for _, tr := range col.Traces("classify") {
				if tr.Attempt == 1 {
					last = tr.Error
				}
			}
			t.Logf("trace of the last first attempt: %s", last)
			// Two failures open the circuit; a batch already in flight may
			// fail on the transport too before it is open.
			if tc.name == "circuit open" && opened < total-3 {
				t.Errorf("%d first attempts met the open circuit, want at least %d", opened, total-3)
			}
		})
	}
}
