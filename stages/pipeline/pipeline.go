package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/edge"
	"github.com/flexiflow/flexiflow/stream"
)

// Pipeline is a set of running stages.
type Pipeline struct {
	stages []*stages.Stage
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	cancel context.CancelFunc

	stopTimeout time.Duration
	log         *zap.Logger
	// Ingest and Egress are the workflow's source and sink roles, when
	// WithEdges started them.
	Ingest *edge.Ingest
	Egress *edge.Egress
}

// Opt configures Start, in the manner of the stages' own options.
type Opt func(*options)

type options struct {
	replicas        int
	createTopics    bool
	partitions      int
	log             *zap.Logger
	stageOptions    []stages.Option
	stageOptionsFor func(*stages.Step) []stages.Option
	instance        string
	stopTimeout     time.Duration
	edges           bool
	registry        event.Registry
}

// WithEdges also runs the workflow's source (ingest) and sink (egress),
// where it has them and the steps include its first or last step.
func WithEdges() Opt { return func(o *options) { o.edges = true } }

// WithRegistry is the schema registry a confluent-avro source or sink uses.
func WithRegistry(r event.Registry) Opt { return func(o *options) { o.registry = r } }

// Replicas starts n consumers per step in this process (default 1).
func Replicas(n int) Opt { return func(o *options) { o.replicas = n } }

// CreateTopics creates the workflow's missing topics before the stages
// start, with partitions partitions (0: the workflow's partitions).
// Without it, Start checks that they exist.
func CreateTopics(partitions int) Opt {
	return func(o *options) { o.createTopics, o.partitions = true, partitions }
}

// WithLogger logs the pipeline's and its stages' events to l.
func WithLogger(l *zap.Logger) Opt { return func(o *options) { o.log = l } }

// StageOptions applies opts to every stage.
func StageOptions(opts ...stages.Option) Opt {
	return func(o *options) { o.stageOptions = append(o.stageOptions, opts...) }
}

// StageOptionsFor adds the options f returns for one step's stages (tests
// use it to give each step a policy sized to its models).
func StageOptionsFor(f func(*stages.Step) []stages.Option) Opt {
	return func(o *options) { o.stageOptionsFor = f }
}

// Instance names this process among each step's consumers (default: the
// host name); replicas append their index.
func Instance(id string) Opt { return func(o *options) { o.instance = id } }

// StopTimeout bounds how long Stop waits for the stages (default 20s,
// inside Kubernetes' default 30 s grace period). A stage still running
// then is left to the broker, which aborts its open transaction: no batch
// is lost, it is processed again by the next owner.
func StopTimeout(d time.Duration) Opt { return func(o *options) { o.stopTimeout = d } }

func (o *options) validate() error {
	switch {
	case o.replicas < 0:
		return fmt.Errorf("replicas must not be negative, got %d", o.replicas)
	case o.partitions < 0:
		return fmt.Errorf("partitions must not be negative, got %d", o.partitions)
	case o.stopTimeout < 0:
		return fmt.Errorf("the stop timeout must not be negative, got %s", o.stopTimeout)
	}
	if o.replicas == 0 {
		o.replicas = 1
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	if o.stopTimeout == 0 {
		o.stopTimeout = 20 * time.Second
	}
	if o.instance == "" {
		o.instance, _ = os.Hostname()
	}
	return nil
}

// Start creates or checks the workflow's topics, then starts the stages of
// steps on the cluster kafka.
func Start(ctx context.Context, steps []*stages.Step, kafka stream.Config, opts ...Opt) (*Pipeline, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, errors.New("no steps to run")
	}
	wf := steps[0].Workflow
	topics := wf.AllTopics()
	if o.edges {
		topics = append(topics, wf.EdgeTopics()...)
	}
	if o.createTopics {
		parts := o.partitions
		if parts == 0 {
			parts = wf.Partitions
		}
		if err := stream.EnsureTopics(ctx, kafka, parts, topics...); err != nil {
			return nil, err
		}
		if err := stream.EnsureCompactedTopic(ctx, kafka, wf.Topics.State); err != nil {
			return nil, err
		}
	} else if err := stream.CheckTopics(ctx, kafka, append(topics, wf.Topics.State)...); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipeline{cancel: cancel, stopTimeout: o.stopTimeout, log: o.log}
	for _, step := range steps {
		for r := 0; r < o.replicas; r++ {
			opts := append([]stages.Option{stages.WithLogger(o.log), stages.WithInstance(fmt.Sprintf("%s-%d", o.instance, r))}, o.stageOptions...)
			if o.stageOptionsFor != nil {
				opts = append(opts, o.stageOptionsFor(step)...)
			}
			st, err := stages.NewStage(step, kafka, opts...)
			if err != nil {
				cancel()
				p.wg.Wait()
				return nil, err
			}
			p.stages = append(p.stages, st)
			p.spawn(zap.String("step", step.Spec.Name), o.log, func() error { return st.Run(ctx) })
		}
	}
	if o.edges {
		if err := p.startEdges(ctx, steps, kafka, o); err != nil {
			cancel()
			p.wg.Wait()
			return nil, err
		}
	}
	return p, nil
}

// spawn runs f until it returns, keeping its error for Err and Stop.
func (p *Pipeline) spawn(who zap.Field, log *zap.Logger, f func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := f(); err != nil {
			log.Error("stopped with an error", who, zap.Error(err))
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		}
	}()
}

// startEdges starts the ingest and egress roles of steps' workflow.
func (p *Pipeline) startEdges(ctx context.Context, steps []*stages.Step, kafka stream.Config, o options) error {
	wf := steps[0].Workflow
	run := func(role string, f func(context.Context) error) {
		p.spawn(zap.String("role", role), o.log, func() error { return f(ctx) })
	}
	if first := steps[0]; wf.Source != nil && first.Spec.Index == 0 {
		g, err := edge.NewIngest(wf, first.In, o.registry)
		if err != nil {
			return err
		}
		p.Ingest = g
		run("ingest", func(ctx context.Context) error { return g.Run(ctx, kafka, o.instance+"-ingest", o.log) })
	}
	if last := steps[len(steps)-1]; wf.Sink != nil && last.Spec.Index == len(wf.Steps)-1 {
		var firstIn *schemas.BatchCodec
		if steps[0].Spec.Index == 0 {
			firstIn = steps[0].In
		}
		e, err := edge.NewEgress(wf, firstIn, last.Out, o.registry)
		if err != nil {
			return err
		}
		p.Egress = e
		run("egress", func(ctx context.Context) error { return e.Run(ctx, kafka, o.instance+"-egress", o.log) })
	}
	return nil
}

// Ready reports whether every stage has joined its group.
func (p *Pipeline) Ready() bool {
	for _, s := range p.stages {
		if !s.Ready() {
			return false
		}
	}
	return true
}

// Snapshots returns every stage's counters, in start order.
func (p *Pipeline) Snapshots() []stages.Snapshot {
	out := make([]stages.Snapshot, len(p.stages))
	for i, s := range p.stages {
		out[i] = s.Snapshot()
	}
	return out
}

// Err returns the errors of stages that stopped on their own.
func (p *Pipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// Stop stops every stage gracefully and waits for them, at most
// Options.StopTimeout.
func (p *Pipeline) Stop() error {
	p.cancel()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(p.stopTimeout):
		var running []string
		for _, s := range p.stages {
			if !s.Stopped() {
				running = append(running, s.Snapshot().Step)
			}
		}
		p.log.Warn("stages did not stop in time; exiting anyway: the broker aborts their open transactions and those batches are processed again",
			zap.Duration("stop_timeout", p.stopTimeout), zap.Strings("steps", running))
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("stages failed: %w", err)
	}
	return nil
}
