package stages_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// testModels are small models whose answers the tests can predict.
func testModels() *models.Registry {
	r := models.NewRegistry()
	score := func(f func(in models.Record) any, id ...func(in models.Record) any) func(map[string]any) (models.Model, error) {
		return func(map[string]any) (models.Model, error) {
			return models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
				out := make([]models.Record, len(in))
				for i, rec := range in {
					out[i] = models.Record{"id": rec["id"], "x": rec["x"], "score": f(rec)}
					if len(id) > 0 {
						out[i]["id"] = id[0](rec)
					}
				}
				return out, nil
			}), nil
		}
	}
	r.Register("good", score(func(models.Record) any { return 1.0 }))
	r.Register("bad", score(func(models.Record) any { return 0.0 }))
	// flaky passes records whose id hashes even: deterministic per record.
	r.Register("flaky", score(func(rec models.Record) any {
		h := fnv.New32a()
		h.Write([]byte(rec["id"].(string)))
		return float64(h.Sum32() % 2)
	}))
	r.Register("garbage", score(func(models.Record) any { return "not a number" }))
	r.Register("boom", func(map[string]any) (models.Model, error) {
		return models.Func(func(context.Context, []models.Record) ([]models.Record, error) { panic("model exploded") }), nil
	})
	r.Register("hang", func(map[string]any) (models.Model, error) {
		return models.Func(func(context.Context, []models.Record) ([]models.Record, error) {
			time.Sleep(3 * time.Second) // ignores its context, like a stuck client
			return nil, nil
		}), nil
	})
	// inflate answers each record with an id four times as long, of
	// pseudo-random hex that compression cannot shrink (for size limits).
	r.Register("inflate", score(func(models.Record) any { return 1.0 }, func(rec models.Record) any {
		id := rec["id"].(string)
		h := fnv.New64a()
		h.Write([]byte(id))
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		b := make([]byte, 2*len(id))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return hex.EncodeToString(b)
	}))
	r.Register("short", func(map[string]any) (models.Model, error) {
		return models.Func(func(context.Context, []models.Record) ([]models.Record, error) { return nil, nil }), nil
	})
	return r
}

// inOrder is a policy that always ranks models in workflow order, so a test
// knows which model is tried first.
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
	return append(dst[:0], make([]bandit.Estimate, p.k)...)
}

// env is one test's broker, workflow and running stages.
type env struct {
	t      *testing.T
	kafka  stream.Config
	wf     *workflow.Workflow
	steps  []*stages.Step
	item   *schemas.BatchCodec
	scored *schemas.BatchCodec
	pipe   *pipeline.Pipeline
	opts   []pipeline.Opt
	next   int // index of the next batch produce writes
}

// startEnv writes the workflow YAML into a temp dir (with the test schemas),
// starts an embedded broker and runs every step.
// envSetup changes how startEnv starts a test's stages.
type envSetup struct {
	before    func(t *testing.T, kafka stream.Config, wf *workflow.Workflow) // before the stages start
	stageOpts func(*stages.Step) []stages.Option
}

func startEnv(t *testing.T, backend streamtest.Backend, yaml string, ordered bool, setup ...func(*envSetup)) *env {
	t.Helper()
	// A fresh workflow name keeps topics and groups apart on a shared broker.
	yaml = regexp.MustCompile(`(?m)^workflow: .*$`).ReplaceAllString(yaml, "workflow: "+streamtest.Unique("t"))
	dir := t.TempDir()
	for _, f := range []string{"item.avsc", "scored.avsc"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "wf.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	wf, err := workflow.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	steps, err := stages.Compile(wf, stages.Deps{Models: testModels(), Schemas: reg})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kafka: backend.Start(t), wf: wf, steps: steps}
	var es envSetup
	for _, f := range setup {
		f(&es)
	}
	if es.before != nil {
		es.before(t, e.kafka, wf)
	}
	e.item, _ = reg.BatchCodec("flexiflow.test.Item")
	e.scored, _ = reg.BatchCodec("flexiflow.test.Scored")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var forStep func(*stages.Step) []stages.Option
	if ordered {
		forStep = func(s *stages.Step) []stages.Option {
			return []stages.Option{stages.WithPolicy(inOrder{k: len(s.Models)})}
		}
	}
	if es.stageOpts != nil {
		ordered := forStep
		forStep = func(s *stages.Step) []stages.Option {
			var o []stages.Option
			if ordered != nil {
				o = ordered(s)
			}
			return append(o, es.stageOpts(s)...)
		}
	}
	opts := []pipeline.Opt{pipeline.CreateTopics(0)}
	if forStep != nil {
		opts = append(opts, pipeline.StageOptionsFor(forStep))
	}
	e.opts = opts
	e.pipe, err = pipeline.Start(ctx, steps, e.kafka, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.pipe.Stop(); err != nil {
			t.Errorf("stopping stages: %v", err)
		}
	})
	return e
}

// restart stops every stage and starts fresh ones, as a redeploy would.
func (e *env) restart() {
	e.t.Helper()
	if err := e.pipe.Stop(); err != nil {
		e.t.Fatal(err)
	}
	p, err := pipeline.Start(context.Background(), e.steps, e.kafka, e.opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.pipe = p
}

// produce writes n batches of size records to the first step's input.
func (e *env) produce(n, size int) []string {
	e.t.Helper()
	cl, err := kgo.NewClient(e.kafka.ClientOpts()...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var ids []string
	for i := e.next; i < e.next+n; i++ {
		id := fmt.Sprintf("b%04d", i)
		b := &schemas.Batch{ID: id, Workflow: e.wf.Name, CreatedAtMs: time.Now().UnixMilli()}
		for j := 0; j < size; j++ {
			b.Records = append(b.Records, models.Record{"id": fmt.Sprintf("%s-%d", id, j), "x": float64(j)})
		}
		v, err := e.item.Encode(nil, b)
		if err != nil {
			e.t.Fatal(err)
		}
		e.send(cl, &kgo.Record{Topic: e.wf.Steps[0].Topics.In, Key: []byte(id), Value: v, Headers: stream.Headers(id, 0, nil, "")})
		ids = append(ids, id)
	}
	e.next += n
	return ids
}

func (e *env) send(cl *kgo.Client, r *kgo.Record) {
	e.t.Helper()
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// collect reads topics (read_committed) until want records arrived or the
// deadline passed.
func (e *env) collect(want int, topics ...string) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(append(e.kafka.ClientOpts(), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Give stragglers (duplicates, if the stage produced any) a moment.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	cl.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

func (e *env) traces(want int) []*schemas.Trace {
	e.t.Helper()
	tc, err := schemas.NewTraceCodec()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*schemas.Trace
	for _, r := range e.collect(want, e.wf.Topics.Traces) {
		tr, err := tc.Decode(r.Value)
		if err != nil {
			e.t.Fatalf("trace does not decode: %v", err)
		}
		out = append(out, tr)
	}
	return out
}

func oneStep(models string, minPass float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `workflow: t
input_schema: flexiflow.test.Item
schemas: [item.avsc, scored.avsc]
partitions: 2
steps:
  - name: score
    output_schema: flexiflow.test.Scored
    assertions:
      records:
        - name: high
          expr: output.score >= 0.5
      batch:
        min_pass_fraction: %g
    models:
`, minPass)
	for _, m := range strings.Split(models, ",") {
		fmt.Fprintf(&b, "      - {name: %s, timeout: 200ms}\n", m)
	}
	return b.String()
}

func header(r *kgo.Record, k string) string { return stream.Header(r, k) }
