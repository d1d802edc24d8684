package demo

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/sinks/summary"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

//go:embed digits.yaml
var workflowYAML []byte

//go:embed digits-trap.yaml
var trapYAML []byte

// TrapWorkflowFile names the built-in trap workflow (demo --workflow-trap).
const TrapWorkflowFile = "digits-trap.yaml (built in; print it with flexiflow demo --workflow-trap --print-workflow)"

// TrapWorkflowYAML returns the trap workflow file's text: the demo's steps
// with a denoise check that passthrough always passes.
func TrapWorkflowYAML() []byte { return append([]byte(nil), trapYAML...) }

// TrapWorkflow parses the trap workflow.
func TrapWorkflow() (*workflow.Workflow, error) { return workflow.Parse(TrapWorkflowFile, trapYAML) }

// WorkflowFile is how error messages and the CLI name the built-in workflow.
const WorkflowFile = "digits.yaml (built in; print it with flexiflow demo --print-workflow)"

// WorkflowYAML returns the demo workflow file's text.
func WorkflowYAML() []byte { return append([]byte(nil), workflowYAML...) }

// Workflow parses the demo workflow.
func Workflow() (*workflow.Workflow, error) { return workflow.Parse(WorkflowFile, workflowYAML) }

// Builtins returns a registry of the kinds the demo's workflows name (the
// digits models, backed by the embedded data set, and kserve-v2), and the
// data set. Models train on first use.
func Builtins() (*models.Registry, *digits.Dataset, error) {
	ds, err := digits.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("loading the digits data set: %w", err)
	}
	r := models.NewRegistry()
	digits.Register(r, ds)
	r.Add(kserve.Kind())
	return r, ds, nil
}

// Compiled is a workflow compiled against the built-in models.
type Compiled struct {
	Workflow *workflow.Workflow
	Steps    []*stages.Step
	Schemas  *schemas.Registry
	Digits   *digits.Dataset
}

// Compile compiles wf against Builtins and the digits schemas (plus the
// workflow's own).
func Compile(wf *workflow.Workflow) (*Compiled, error) { return CompileWith(wf, nil) }

// CompileWith is Compile with a logger for served models' retry and
// circuit-breaker events (nil discards them).
func CompileWith(wf *workflow.Workflow, log *zap.Logger) (*Compiled, error) {
	mreg, ds, err := Builtins()
	if err != nil {
		return nil, err
	}
	sreg, err := schemas.NewRegistry()
	if err != nil {
		return nil, err
	}
	if err := digits.AddSchemas(sreg); err != nil {
		return nil, err
	}
	steps, err := stages.Compile(wf, stages.Deps{Models: mreg, Schemas: sreg, Log: log})
	if err != nil {
		return nil, err
	}
	return &Compiled{Workflow: wf, Steps: steps, Schemas: sreg, Digits: ds}, nil
}

// BatchID names the i-th batch the demo producer writes.
func BatchID(i int) string { return fmt.Sprintf("b%06d", i) }

// PhaseOf maps a demo batch id to the drift phase it was produced in, for a
// run of total batches.
func PhaseOf(total int) func(id string) string {
	phases := digits.Schedule(total)
	return func(id string) string {
		i, err := strconv.Atoi(strings.TrimPrefix(id, "b"))
		if err != nil {
			return "unknown"
		}
		name := phases[0].Name
		for _, p := range phases {
			if i >= p.From {
				name = p.Name
			}
		}
		return name
	}
}

// PhaseNames lists the phases of a run of total batches, in order.
func PhaseNames(total int) []string {
	var out []string
	for _, p := range digits.Schedule(total) {
		out = append(out, p.Name)
	}
	return out
}

// Accuracy scores a delivered batch of predictions against the labels the
// records carry.
func Accuracy(b *schemas.Batch) (correct, total int) {
	for _, r := range b.Records {
		p, ok1 := r["predicted"].(int32)
		l, ok2 := r["label"].(int32)
		if ok1 && ok2 {
			total++
			if p == l {
				correct++
			}
		}
	}
	return correct, total
}

// Producer writes the demo's drifting stream of digit batches to a
// workflow's first input topic.
type Producer struct {
	ds    *digits.Dataset
	wf    *workflow.Workflow
	codec *schemas.BatchCodec
	size  int
	seed  uint64
}

// NewProducer checks that wf reads digit images and prepares a producer of
// batches of size records.
func NewProducer(ds *digits.Dataset, wf *workflow.Workflow, reg *schemas.Registry, size int, seed uint64) (*Producer, error) {
	const want = "flexiflow.demo.DigitImage"
	if wf.InputSchema != want {
		return nil, fmt.Errorf("the demo producer writes %s batches, but workflow %q reads %s; use it with the demo workflow or one whose input_schema is %s",
			want, wf.Name, wf.InputSchema, want)
	}
	if size < 1 {
		return nil, fmt.Errorf("batch size must be at least 1, got %d", size)
	}
	codec, err := reg.BatchCodec(want)
	if err != nil {
		return nil, err
	}
	return &Producer{ds: ds, wf: wf, codec: codec, size: size, seed: seed}, nil
}

// Records builds batch i of a run of total batches: the records Encode
// would write.
func (p *Producer) Records(i, total int) []models.Record {
	_, recs := p.ds.MakeBatch(rand.New(rand.NewPCG(p.seed, uint64(i))), i, total, p.size)
	return recs
}

// Encode builds and encodes batch i of a run of total batches. The same
// (seed, i, total) always gives the same images.
func (p *Producer) Encode(i, total int) ([]byte, error) {
	_, recs := p.ds.MakeBatch(rand.New(rand.NewPCG(p.seed, uint64(i))), i, total, p.size)
	b := &schemas.Batch{ID: BatchID(i), Workflow: p.wf.Name, CreatedAtMs: time.Now().UnixMilli(), Records: recs}
	return p.codec.Encode(nil, b)
}

// Produce writes total batches in order (batch i drifts per the schedule for
// total) and returns their ids. Before batch i it calls gate(i), which may
// block to hold the producer back (the demo keeps only a window of batches
// in flight, so the stream drifts at the pace the workflow consumes it);
// gate may be nil. Writes are idempotent and acknowledged by all in-sync
// replicas.
func (p *Producer) Produce(ctx context.Context, kafka stream.Config, total int, gate func(i int)) ([]string, error) {
	cl, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.DefaultProduceTopic(p.wf.Steps[0].Topics.In))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ids := make([]string, 0, total)
	var firstErr error
	errs := make(chan error, 1)
	for i := 0; i < total; i++ {
		if gate != nil {
			gate(i)
		}
		if ctx.Err() != nil {
			break
		}
		id := BatchID(i)
		v, err := p.Encode(i, total)
		if err != nil {
			return ids, err
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(id), Value: v, Headers: stream.Headers(id, 0, nil, "")}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
		ids = append(ids, id)
	}
	if err := cl.Flush(ctx); err != nil {
		return ids, fmt.Errorf("flushing produced batches: %w", err)
	}
	select {
	case firstErr = <-errs:
	default:
	}
	if firstErr != nil {
		return ids, fmt.Errorf("producing demo batches to %s: %w", p.wf.Steps[0].Topics.In, firstErr)
	}
	return ids, ctx.Err()
}

// Summary describes wf as the run summary's collector needs it.
func Summary(wf *workflow.Workflow) summary.Workflow {
	out := summary.Workflow{Name: wf.Name, Out: wf.Topics.Out, Traces: wf.Topics.Traces}
	for _, s := range wf.Steps {
		out.Steps = append(out.Steps, summary.Step{Name: s.Name, DLQ: s.Topics.DLQ})
	}
	return out
}
