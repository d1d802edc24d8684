package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bench/outcomes"
	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages/models"
)

func newBenchOutcomesCmd() *cobra.Command {
	var wfPath, from, out string
	var trap bool
	var batches, size, repeat int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "outcomes [--workflow FILE | --workflow-trap] --out TABLE.csv",
		Short: "Record what every model of a workflow does on a stream: the table bench replay reads",
		Long: `Run every model of every step, and every (upstream model, model) pair
between steps, on each batch of a stream, offline (no Kafka), and write
what each did: whether the step's assertions pass its output and what the
attempt costs the bandit (its price_ms, else its measured runtime in ms).
The CSV (item,step,upstream,model,passed,cost_ms) is the table
"flexiflow bench replay" walks policies through, and what a live run's
cost per delivered batch is compared with.

The stream is the demo's drifting digit batches (the same batches, for the
same --seed and --batches, as "flexiflow demo" produces) for a workflow
reading flexiflow.demo.DigitImage, or the records of --from (JSON Lines of
the first step's input schema), --batch-size per batch, in order.

Examples:
  flexiflow bench outcomes --out digits.csv                       # the demo workflow
  flexiflow bench outcomes --workflow-trap --batches 1200 --out trap.csv
  flexiflow bench outcomes --workflow wf.yaml --from records.jsonl --batch-size 16 --out wf.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l *loaded
			var err error
			if trap {
				if wfPath != "" {
					return fmt.Errorf("--workflow-trap and --workflow name two workflows; give one")
				}
				wf, perr := demo.TrapWorkflow()
				if perr != nil {
					return perr
				}
				l, err = compileWorkflow(wf, zap.NewNop())
			} else {
				l, err = compile(wfPath, zap.NewNop())
			}
			if err != nil {
				return err
			}
			var batch func(i int) ([]models.Record, error)
			n := batches
			if from != "" {
				recs, err := readRecords(from, l)
				if err != nil {
					return err
				}
				n = (len(recs) + size - 1) / size
				if batches < n {
					n = batches
				}
				batch = func(i int) ([]models.Record, error) { return recs[i*size : min(len(recs), (i+1)*size)], nil }
			} else {
				ds, err := l.builtin.digits()
				if err != nil {
					return err
				}
				prod, err := demo.NewProducer(ds, l.wf, l.schemas, size, seed)
				if err != nil {
					return fmt.Errorf("%w (or give the stream's records with --from)", err)
				}
				batch = func(i int) ([]models.Record, error) { return prod.Records(i, n), nil }
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			progress := func(done int) {
				if done%100 == 0 || done == n {
					fmt.Fprintf(cmd.ErrOrStderr(), "outcomes: %d of %d items\n", done, n)
				}
			}
			return outcomes.Write(cmd.Context(), l.steps, n, batch, w, outcomes.Options{Repeat: repeat, Progress: progress})
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (default: the demo's)")
	f.BoolVar(&trap, "workflow-trap", false, "the demo's trap workflow (see flexiflow demo --workflow-trap)")
	f.StringVar(&from, "from", "", "JSON Lines of the first step's input records, instead of the demo's digit stream")
	f.IntVar(&batches, "batches", 1200, "items (batches) to record; with --from, at most this many")
	f.IntVar(&size, "batch-size", 32, "records per batch")
	f.IntVar(&repeat, "repeat", 3, "run each attempt this many times and record its median cost")
	f.Uint64Var(&seed, "seed", 1, "the demo stream's seed (flexiflow demo uses 1)")
	f.StringVar(&out, "out", "-", "file to write the table to (- for standard output)")
	atLeast(f, "batches", "1")
	atLeast(f, "batch-size", "1")
	atLeast(f, "repeat", "1")
	return cmd
}

// readRecords reads JSON Lines of the first step's input records.
func readRecords(path string, l *loaded) ([]models.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	codec, err := event.New(event.JSON, l.steps[0].In.RecordSchema, false)
	if err != nil {
		return nil, err
	}
	lines, err := eventLines(f, path, l.steps[0].In.Fields)
	if err != nil {
		return nil, err
	}
	recs := make([]models.Record, 0, len(lines))
	for _, ln := range lines {
		rec, err := codec.Decode([]byte(ln.text))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, ln.line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s holds no records", path)
	}
	return recs, nil
}
