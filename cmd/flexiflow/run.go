package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/ops"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

func newRunCmd(g *globals) *cobra.Command {
	var brokers string
	var instance, metricsAddr, clickhouseDSN, policy string
	var policyParams map[string]string
	var createTopics bool
	var cf consumerFlags
	cmd := &cobra.Command{
		Use:   "run WORKFLOW.yaml",
		Short: "Run every step of a workflow in this process",
		Long: `Run all stages of a workflow in one process until interrupted (Ctrl-C or
SIGTERM, after which in-flight transactions finish and the stages leave their
groups). Each step is its own consumer group, exactly as when deployed with
"flexiflow stage", so you can move steps out later without changing topics.

With no --brokers, an embedded broker starts and its address is printed:
point your producers at it and write batches to the first step's input
topic (see "flexiflow produce" for the demo's producer).

Examples:
  flexiflow run my-workflow.yaml
  flexiflow run my-workflow.yaml --brokers kafka-1:9092,kafka-2:9092 --replicas 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			defer log.Sync()
			var edits []func(*workflow.Workflow) error
			if policy != "" {
				edits = append(edits, func(wf *workflow.Workflow) error { return wf.SetPolicy(policy) })
			}
			if len(policyParams) > 0 {
				edits = append(edits, func(wf *workflow.Workflow) error { return wf.SetPolicyParams(policyParams) })
			}
			l, err := load(cmd.Context(), g, args[0], brokers, true, log, edits...)
			if err != nil {
				return err
			}
			defer l.close()
			schemaReg, err := g.schemaRegistry(l.wf)
			if err != nil {
				return err
			}
			reg := ops.NewRegistry()
			metrics := stages.NewMetrics(reg)
			opts := append(cf.pipelineOptions(createTopics, log, instance, metrics), pipeline.WithEdges())
			if schemaReg != nil {
				opts = append(opts, pipeline.WithRegistry(schemaReg))
			}
			pipe, err := pipeline.Start(cmd.Context(), l.steps, l.kafka, opts...)
			if err != nil {
				return err
			}
			in, out := "write batches to "+l.wf.Steps[0].Topics.In, "output on "+l.wf.Topics.Out
			if l.wf.Source != nil {
				in = fmt.Sprintf("write events (%s) to %s", l.wf.Source.Format, l.wf.Source.Topic)
			}
			if l.wf.Sink != nil {
				out = fmt.Sprintf("one result per event on %s", l.wf.Sink.Topic)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workflow %s running on %v: %s; %s, traces on %s (Ctrl-C to stop)\n",
				l.wf.Name, l.kafka.Brokers, in, out, l.wf.Topics.Traces)
			if metricsAddr != "" {
				if _, err := ops.Serve(cmd.Context(), metricsAddr, reg, pipe.Ready, log); err != nil {
					_ = pipe.Stop()
					return err
				}
			}
			sink, err := startRunSink(cmd.Context(), g, l, clickhouseDSN, log)
			if err != nil {
				_ = pipe.Stop()
				return err
			}
			progress(cmd, pipe, cf.every, log)
			err = pipe.Stop()
			return errors.Join(err, sink.finish(context.Background(), cmd.OutOrStdout(), 10*time.Second))
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port]; empty starts the embedded broker")
	f.StringVar(&clickhouseDSN, "clickhouse", "", "also run the trace sink into this ClickHouse (clickhouse://USER:PASSWORD@HOST:9000/DB; run flexiflow migrate first)")
	f.StringVar(&policy, "policy", "", "rank every step's models with this policy instead of the workflow's ("+strings.Join(bandit.Names(), ", ")+")")
	f.StringToStringVar(&policyParams, "policy-param", nil, "set a parameter of every step's policy, over the workflow's: NAME=VALUE, repeatable (e.g. overhead_ms=0; docs/reference/workflow.md lists each policy's)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this host:port (empty: off)")
	f.StringVar(&instance, "instance-id", "", "this process's name among a step's consumers (default: host name); give each process of a step its own")
	cf.add(f, "per step")
	f.BoolVar(&createTopics, "create-topics", true, "create missing topics with the workflow's partition count")
	return cmd
}

// progress logs the stages' counters until the command's context ends.
func progress(cmd *cobra.Command, pipe *pipeline.Pipeline, every time.Duration, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-cmd.Context().Done():
			log.Info("stopping: finishing in-flight transactions")
			return
		case <-t.C:
			for _, s := range pipe.Snapshots() {
				logSnapshot(log, s)
			}
		}
	}
}

func logSnapshot(log *zap.Logger, s stages.Snapshot) {
	log.Info("progress", zap.String("step", s.Step), zap.Int64("batches", s.Batches), zap.Int64("next", s.Next),
		zap.Int64("retry", s.Retry), zap.Int64("dlq", s.DLQ), zap.Int64("aborted", s.Aborted), zap.String("leader", s.Leader))
}
