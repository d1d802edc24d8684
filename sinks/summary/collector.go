package summary

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
)

// Options tune a Collector.
type Options struct {
	// PhaseOf names the input phase a batch belongs to (the demo's drift
	// schedule); nil puts every batch in phase "all".
	PhaseOf func(batchID string) string
	// Quality scores a delivered batch (for example, accuracy against labels
	// the records carry): correct and total records. Nil skips it.
	Quality func(b *schemas.Batch) (correct, total int)
	// Out decodes delivered batches for Quality.
	Out *schemas.BatchCodec
	Log *zap.Logger
}

// Collector reads a workflow's traces, output and DLQ topics.
type Collector struct {
	wf     Workflow
	kafka  stream.Config
	opts   Options
	traces *schemas.TraceCodec

	mu        sync.Mutex
	byStep    map[string][]*schemas.Trace
	delivered map[string]bool
	dead      map[string]string // batch id -> step whose DLQ holds it
	deadDup   int               // dead letters or deliveries seen twice
	quality   map[string][2]int // phase -> correct, total
}

// NewCollector prepares a collector; Run starts it.
func NewCollector(wf Workflow, cfg stream.Config, opts Options) (*Collector, error) {
	tc, err := schemas.NewTraceCodec()
	if err != nil {
		return nil, err
	}
	if opts.PhaseOf == nil {
		opts.PhaseOf = func(string) string { return "all" }
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Collector{wf: wf, kafka: cfg, opts: opts, traces: tc,
		byStep: map[string][]*schemas.Trace{}, delivered: map[string]bool{},
		dead: map[string]string{}, quality: map[string][2]int{}}, nil
}

// Workflow is what the collector needs to know of a workflow: its name,
// the topics it reads, and its steps in order.
type Workflow struct {
	Name   string
	Out    string // the delivered batches
	Traces string
	Steps  []Step
}

// Step is one step of a Workflow: its name and dead-letter topic.
type Step struct {
	Name string
	DLQ  string
}

// Run consumes until ctx ends.
func (c *Collector) Run(ctx context.Context) error {
	topics := []string{c.wf.Traces, c.wf.Out}
	dlqStep := map[string]string{}
	for _, s := range c.wf.Steps {
		topics = append(topics, s.DLQ)
		dlqStep[s.DLQ] = s.Name
	}
	cl, err := kgo.NewClient(append(c.kafka.ClientOpts(),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("summary collector: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			c.opts.Log.Warn("summary fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		c.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			switch {
			case r.Topic == c.wf.Traces:
				t, err := c.traces.Decode(r.Value)
				if err != nil {
					c.opts.Log.Warn("undecodable trace skipped", zap.Int64("offset", r.Offset), zap.Error(err))
					return
				}
				c.byStep[t.Step] = append(c.byStep[t.Step], t)
			case r.Topic == c.wf.Out:
				id := stream.Header(r, stream.HeaderBatchID)
				if c.delivered[id] {
					c.deadDup++
				}
				c.delivered[id] = true
				c.score(id, r.Value)
			default:
				id := stream.Header(r, stream.HeaderBatchID)
				if _, ok := c.dead[id]; ok {
					c.deadDup++
				}
				c.dead[id] = dlqStep[r.Topic]
			}
		})
		c.mu.Unlock()
	}
}

func (c *Collector) score(id string, value []byte) {
	if c.opts.Quality == nil || c.opts.Out == nil {
		return
	}
	b, err := c.opts.Out.Decode(value)
	if err != nil {
		return
	}
	ok, n := c.opts.Quality(b)
	ph := c.opts.PhaseOf(id)
	q := c.quality[ph]
	c.quality[ph] = [2]int{q[0] + ok, q[1] + n}
}

// Finished counts distinct batches delivered or dead-lettered so far.
func (c *Collector) Finished() (delivered, deadLettered int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.delivered), len(c.dead)
}

// Outcome says where a batch ended: "out", "dlq:<step>", or "" if nowhere yet.
func (c *Collector) Outcome(batchID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.delivered[batchID] {
		return "out"
	}
	if s, ok := c.dead[batchID]; ok {
		return "dlq:" + s
	}
	return ""
}

// Traces returns a copy of one step's traces in decision order.
func (c *Collector) Traces(step string) []*schemas.Trace {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]*schemas.Trace(nil), c.byStep[step]...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].TsUs < out[j].TsUs })
	return out
}
