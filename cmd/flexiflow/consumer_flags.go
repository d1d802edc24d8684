package main

import (
	"runtime"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/pipeline"
)

// consumerFlags are the settings of a process's stage consumers, shared by
// run and stage.
type consumerFlags struct {
	replicas, workers int
	maxPoll           int
	every             time.Duration
	sessionTimeout    time.Duration
	maxMessageBytes   int
}

// add declares the flags; consumers says whose consumers --replicas counts.
func (c *consumerFlags) add(f *pflag.FlagSet, consumers string) {
	f.IntVar(&c.replicas, "replicas", 1, "consumers "+consumers+" in this process")
	f.IntVar(&c.workers, "workers", runtime.GOMAXPROCS(0), "batches each consumer processes at once, starting on fetched batches while the previous transaction commits (models must be safe for concurrent use; 1 for models that are not)")
	f.IntVar(&c.maxPoll, "max-poll", stages.DefaultMaxPoll, "batches one transaction takes at most, and how far workers start ahead of it (flexiflow plan finds a value for your models and broker)")
	f.DurationVar(&c.every, "progress-every", 10*time.Second, "how often to log each stage's counters")
	f.DurationVar(&c.sessionTimeout, "session-timeout", stages.DefaultSessionTimeout, "how long a step's group waits for a consumer that stopped heartbeating before handing its partitions to others (a restarted consumer rejoins at once under its --instance-id)")
	f.IntVar(&c.maxMessageBytes, "max-message-bytes", 0, "largest record a stage produces; larger outputs are failed attempts and larger dead letters leave their value out (0: each topic's max.message.bytes)")
	atLeast(f, "replicas", "1")
	atLeast(f, "workers", "1")
	atLeast(f, "max-poll", "1")
	atLeast(f, "progress-every", "1ms")
	atLeast(f, "session-timeout", "1s")
	atLeast(f, "max-message-bytes", "0")
}

// stageOptions are the stage options the flags set.
func (c *consumerFlags) stageOptions(metrics *stages.Metrics) []stages.Option {
	return []stages.Option{stages.WithMetrics(metrics), stages.WithWorkers(c.workers), stages.WithMaxPoll(c.maxPoll),
		stages.WithSessionTimeout(c.sessionTimeout), stages.WithMaxMessageBytes(c.maxMessageBytes)}
}

// pipelineOptions are the pipeline options of run and stage.
func (c *consumerFlags) pipelineOptions(createTopics bool, log *zap.Logger, instance string, metrics *stages.Metrics) []pipeline.Opt {
	opts := []pipeline.Opt{pipeline.Replicas(c.replicas), pipeline.WithLogger(log), pipeline.Instance(instance),
		pipeline.StageOptions(c.stageOptions(metrics)...)}
	if createTopics {
		opts = append(opts, pipeline.CreateTopics(0))
	}
	return opts
}
