package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages"
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
}

// Options configure Start.
type Options struct {
	Kafka stream.Config
	// Replicas is the number of consumers per step (default 1).
	Replicas int
	// CreateTopics creates missing topics before the stages start.
	CreateTopics bool
	Partitions   int
	Log          *zap.Logger
	StageOptions []stages.Option
	// StageOptionsFor adds options for one step's stages (tests use it to
	// give each step a policy sized to its models).
	StageOptionsFor func(*stages.Step) []stages.Option
	// Instance names this process among each step's consumers (default: the
	// host name); replicas append their index.
	Instance string
	// StopTimeout bounds how long Stop waits for the stages (default 20s,
	// inside Kubernetes' default 30 s grace period). A stage still running
	// then is left to the broker, which aborts its open transaction: no
	// batch is lost, it is processed again by the next owner.
	StopTimeout time.Duration
}

// Start creates topics if asked, then starts the stages of steps.
func Start(ctx context.Context, steps []*stages.Step, o Options) (*Pipeline, error) {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if len(steps) == 0 {
		return nil, errors.New("no steps to run")
	}
	wf := steps[0].Workflow
	if o.CreateTopics {
		parts := o.Partitions
		if parts == 0 {
			parts = wf.Partitions
		}
		if err := stream.EnsureTopics(ctx, o.Kafka, parts, wf.AllTopics()...); err != nil {
			return nil, err
		}
		if err := stream.EnsureCompactedTopic(ctx, o.Kafka, wf.Topics.State); err != nil {
			return nil, err
		}
	} else if err := stream.CheckTopics(ctx, o.Kafka, append(wf.AllTopics(), wf.Topics.State)...); err != nil {
		return nil, err
	}
	if o.Instance == "" {
		o.Instance, _ = os.Hostname()
	}
	ctx, cancel := context.WithCancel(ctx)
	if o.StopTimeout <= 0 {
		o.StopTimeout = 20 * time.Second
	}
	p := &Pipeline{cancel: cancel, stopTimeout: o.StopTimeout, log: o.Log}
	for _, step := range steps {
		for r := 0; r < o.Replicas; r++ {
			opts := append([]stages.Option{stages.WithLogger(o.Log), stages.WithInstance(fmt.Sprintf("%s-%d", o.Instance, r))}, o.StageOptions...)
			if o.StageOptionsFor != nil {
				opts = append(opts, o.StageOptionsFor(step)...)
			}
			st, err := stages.NewStage(step, o.Kafka, opts...)
			if err != nil {
				cancel()
				p.wg.Wait()
				return nil, err
			}
			p.stages = append(p.stages, st)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				if err := st.Run(ctx); err != nil {
					o.Log.Error("stage stopped with an error", zap.String("step", step.Spec.Name), zap.Error(err))
					p.mu.Lock()
					p.errs = append(p.errs, err)
					p.mu.Unlock()
				}
			}()
		}
	}
	return p, nil
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
