package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/stream"
)

func newProduceCmd(g *globals) *cobra.Command {
	var wfPath, brokers string
	var batches, size int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "produce --workflow FILE --brokers ADDRS",
		Short: "Write the demo's drifting digit batches to a workflow's input topic",
		Long: `Produce the demo input stream (batches of handwritten-digit images whose
noise grows phase by phase) to the first step's input topic of a workflow
that reads flexiflow.demo.DigitImage, on any Kafka cluster.

Example:
  flexiflow produce --brokers kafka:9092 --batches 5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			defer log.Sync()
			if batches < 1 {
				return fmt.Errorf("--batches must be at least 1, got %d", batches)
			}
			l, err := load(cmd.Context(), g, wfPath, brokers, false, log)
			if err != nil {
				return err
			}
			defer l.close()
			ds, err := l.builtin.digits()
			if err != nil {
				return err
			}
			p, err := demo.NewProducer(ds, l.wf, l.schemas, size, seed)
			if err != nil {
				return err
			}
			if err := stream.EnsureTopics(cmd.Context(), l.kafka, l.wf.Partitions, l.wf.Steps[0].Topics.In); err != nil {
				return err
			}
			ids, err := p.Produce(cmd.Context(), l.kafka, batches, nil)
			fmt.Fprintf(cmd.OutOrStdout(), "produced %d batches to %s\n", len(ids), l.wf.Steps[0].Topics.In)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	f.IntVar(&batches, "batches", 1200, "batches to produce")
	f.IntVar(&size, "batch-size", 32, "digit images per batch")
	f.Uint64Var(&seed, "seed", 1, "seed for the input stream")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}
