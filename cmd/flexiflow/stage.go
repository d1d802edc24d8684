package main

import (
	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/ops"
	"github.com/flexiflow/flexiflow/stages/pipeline"
)

func newStageCmd(g *globals) *cobra.Command {
	var wfPath, step, brokers string
	var instance, metricsAddr string
	var createTopics bool
	var cf consumerFlags
	cmd := &cobra.Command{
		Use:   "stage --workflow FILE --step NAME --brokers ADDRS",
		Short: "Run one step of a workflow, for independent deployment",
		Long: `Run the consumers of one workflow step. Start as many processes as you like
for the same step: they share its partitions as members of the consumer group
"<workflow>.<step>". Each step can be deployed, scaled and restarted on its
own; batches wait in Kafka meanwhile, and transactions make sure none is lost
or processed twice.

Example:
  flexiflow stage --workflow digits.yaml --step classify --brokers kafka:9092`,
		Args: cobra.NoArgs,
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
			spec, err := l.wf.Step(step)
			if err != nil {
				return err
			}
			if err := l.connect(cmd.Context(), g, brokers, false, log); err != nil {
				return err
			}
			defer l.close()
			reg := ops.NewRegistry()
			metrics := stages.NewMetrics(reg)
			pipe, err := pipeline.Start(cmd.Context(), []*stages.Step{l.steps[spec.Index]}, l.kafka, cf.pipelineOptions(createTopics, log, instance, metrics)...)
			if err != nil {
				return err
			}
			if metricsAddr != "" {
				if _, err := ops.Serve(cmd.Context(), metricsAddr, reg, pipe.Ready, log); err != nil {
					_ = pipe.Stop()
					return err
				}
			}
			progress(cmd, pipe, cf.every, log)
			return pipe.Stop()
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	f.StringVar(&step, "step", "", "the step to run (required)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this host:port (empty: off)")
	f.StringVar(&instance, "instance-id", "", "this process's name among a step's consumers (default: host name); give each process of a step its own")
	cf.add(f, "of this step")
	f.BoolVar(&createTopics, "create-topics", true, "create missing topics with the workflow's partition count")
	_ = cmd.MarkFlagRequired("step")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}
