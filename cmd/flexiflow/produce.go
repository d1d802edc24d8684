package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/stream"
)

func newProduceCmd(g *globals) *cobra.Command {
	var wfPath, brokers, from, key string
	var batches, size int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "produce --workflow FILE --brokers ADDRS",
		Short: "Write events from a file to a workflow's source topic, or the demo's digit batches",
		Long: `With --from, write the events of a JSON Lines file (one object per line)
or a CSV file (a header row naming the fields, then one event per row; a
cell becomes a number, boolean or string by its field's type, an empty
cell null) to the workflow's source topic; - reads standard input. One
Kafka record per event in the source's format, keyed by the --key field's
value. Each
line is checked against input_schema first: a line that does not fit
stops the command with its line number and what is wrong, before anything
of the file is written.

Without --from, produce the demo input stream (batches of handwritten-digit
images whose noise grows phase by phase) to the first step's input topic
of a workflow that reads flexiflow.demo.DigitImage.`,
		Example: `  flexiflow produce --workflow examples/fraud/workflow.yaml --brokers kafka:9092 --from examples/fraud/events.jsonl --key id
  cat events.jsonl | flexiflow produce --workflow wf.yaml --brokers kafka:9092 --from -
  flexiflow produce --brokers kafka:9092 --batches 5000     # the demo's digit stream`,
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
			if from != "" {
				return produceEvents(cmd, g, wfPath, brokers, from, key, log)
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
	f.StringVar(&from, "from", "", "JSON Lines or CSV file of events to write to the workflow's source topic (- for standard input)")
	f.StringVar(&key, "key", "", "with --from: the field whose value keys each event's record (empty: no key)")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}
