package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages/edge"
	"github.com/flexiflow/flexiflow/stages/ops"
	"github.com/flexiflow/flexiflow/stream"
)

// edgeRole is what ingest and egress differ in.
type edgeRole struct {
	name, short, long, example string
	// start builds the role for the loaded workflow.
	start func(l *loaded, reg event.Registry) (*edgeRun, error)
}

// edgeRun is a role built for a workflow: its run function, the topics it
// needs, a progress line, and its counts (exported on /metrics as
// flexiflow_<role>_<name>_total).
type edgeRun struct {
	run    func(context.Context, stream.Config, string, *zap.Logger) error
	topics []string
	status func() string
	counts map[string]*atomic.Int64
}

var ingestRole = edgeRole{
	name:  "ingest",
	short: "Read the workflow's source topic of single events and batch them for its first step",
	long: `Run the workflow's source on its own, for independent deployment: read
single events from source.topic (json, avro or confluent-avro), check each against
input_schema, group them per source partition, in order, into batches of
up to source.batch.max_records and produce them to the first step's input
topic, in one Kafka transaction with the consumed offsets. An event that
cannot be read goes to the source's dead-letter topic with the reason in
the flexiflow-error header and its bytes, key and headers as they came. A
tombstone (a record without a value) is skipped and counted.

"flexiflow run" starts ingest with the steps when the workflow has a source.`,
	example: `  flexiflow ingest --workflow fraud.yaml --brokers kafka:9092`,
	start: func(l *loaded, reg event.Registry) (*edgeRun, error) {
		g, err := edge.NewIngest(l.wf, l.steps[0].In, reg)
		if err != nil {
			return nil, err
		}
		status := func() string {
			return fmt.Sprintf("%d events in %d batches, %d dead-lettered, %d tombstones skipped", g.Events.Load(), g.Batches.Load(), g.DeadLetters.Load(), g.Tombstones.Load())
		}
		return &edgeRun{run: g.Run, topics: []string{l.wf.Source.Topic, l.wf.Source.DLQ, l.wf.Steps[0].Topics.In}, status: status,
			counts: map[string]*atomic.Int64{"events": &g.Events, "batches": &g.Batches, "dead_letters": &g.DeadLetters, "tombstones": &g.Tombstones}}, nil
	},
}

var egressRole = edgeRole{
	name:  "egress",
	short: "Write the workflow's delivered batches to its sink topic, one record per event",
	long: `Run the workflow's sink on its own, for independent deployment: read the
batches the last step delivered and write one record per event to
sink.topic (json, avro or confluent-avro), keyed by the event's original key, with its
headers (traceparent included) and flexiflow-batch-id, flexiflow-models
(step=model for each step) and flexiflow-source (topic/partition/offset),
in one Kafka transaction with the consumed offsets.

"flexiflow run" starts egress with the steps when the workflow has a sink.`,
	example: `  flexiflow egress --workflow fraud.yaml --brokers kafka:9092`,
	start: func(l *loaded, reg event.Registry) (*edgeRun, error) {
		e, err := edge.NewEgress(l.wf, l.steps[0].In, l.steps[len(l.steps)-1].Out, reg)
		if err != nil {
			return nil, err
		}
		status := func() string {
			return fmt.Sprintf("%d batches written as %d records", e.Batches.Load(), e.Events.Load())
		}
		return &edgeRun{run: e.Run, topics: []string{l.wf.Topics.Out, l.wf.Sink.Topic}, status: status,
			counts: map[string]*atomic.Int64{"batches": &e.Batches, "records": &e.Events}}, nil
	},
}

func newEdgeCmd(g *globals, role edgeRole) *cobra.Command {
	var wfPath, brokers, instance, metricsAddr string
	var createTopics bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:     role.name + " --workflow FILE --brokers ADDRS",
		Short:   role.short,
		Long:    role.long,
		Example: role.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			defer log.Sync()
			l, err := compile(wfPath, log)
			if err != nil {
				return err
			}
			reg, err := g.schemaRegistry(l.wf)
			if err != nil {
				return err
			}
			er, err := role.start(l, reg)
			if err != nil {
				return err
			}
			if err := l.connect(cmd.Context(), g, brokers, false, log); err != nil {
				return err
			}
			defer l.close()
			if createTopics {
				err = stream.EnsureTopics(cmd.Context(), l.kafka, l.wf.Partitions, er.topics...)
			} else {
				err = stream.CheckTopics(cmd.Context(), l.kafka, er.topics...)
			}
			if err != nil {
				return err
			}
			if instance == "" {
				instance = hostname()
			}
			var running atomic.Bool
			if metricsAddr != "" {
				mreg := ops.NewRegistry()
				for name, c := range er.counts {
					mreg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
						Name: "flexiflow_" + role.name + "_" + name + "_total", Help: role.name + " " + strings.ReplaceAll(name, "_", " ") + " so far",
					}, func() float64 { return float64(c.Load()) }))
				}
				if _, err := ops.Serve(cmd.Context(), metricsAddr, mreg, running.Load, log); err != nil {
					return err
				}
			}
			done := make(chan error, 1)
			running.Store(true) // its topics exist and the relay starts now
			go func() { done <- er.run(cmd.Context(), l.kafka, instance+"-"+role.name, log) }()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case err := <-done:
					fmt.Fprintf(cmd.ErrOrStderr(), "%s stopped: %s\n", role.name, er.status())
					return err
				case <-tick.C:
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", role.name, er.status())
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file with a "+map[string]string{"ingest": "source", "egress": "sink"}[role.name]+" (required)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	f.StringVar(&instance, "instance-id", "", "this process's name among the role's consumers (default: host name); give each process its own")
	f.BoolVar(&createTopics, "create-topics", true, "create missing topics with the workflow's partition count (false: fail naming them)")
	f.DurationVar(&every, "progress-every", 10*time.Second, "print counts this often")
	atLeast(f, "progress-every", "1ms")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics (flexiflow_"+role.name+"_*_total), /healthz and /readyz on this host:port (empty: off)")
	_ = cmd.MarkFlagRequired("workflow")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

// hostname names this process when --instance-id is not given.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "flexiflow"
	}
	return h
}
