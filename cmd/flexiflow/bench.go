package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/bandit/sim"
	"github.com/flexiflow/flexiflow/bench/throughput"
	"github.com/flexiflow/flexiflow/stream"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that print figures anyone can rerun",
	}
	cmd.AddCommand(newBenchBanditCmd(), newBenchThroughputCmd(g), newBenchReplayCmd(), newBenchOutcomesCmd())
	return cmd
}

func newBenchThroughputCmd(g *globals) *cobra.Command {
	o := throughput.Options{}
	var brokers, format, variants string
	var scaling bool
	cmd := &cobra.Command{
		Use:   "throughput",
		Short: "Measure a stage's throughput and latency against a raw Kafka loop",
		Long: `Measure, in one run on the same broker and topic layout:

  raw         a transactional consume → produce loop copying batches undecoded
  stage-noop  a FlexiFlow stage with a model that returns its input and one
              trivial assertion: decode, rank, assert, encode, route, trace
  stage-demo  the demo workflow's first step with its real models

Throughput: each variant drains a preloaded backlog, --rounds times
round-robin after an untimed --warmup; the median round is reported with the
CPU seconds per 1,000 batches and how many batches a transaction carried.
ratio = stage-noop / raw throughput.

Latency: raw and stage-noop then meet the same stream, paced at half of
stage-noop's throughput (stage-demo at half of its own), again --rounds
times round-robin; the end-to-end p50/p99 from produce to the output or
dead-letter topic is reported (each variant's median round), and the
latency the stage adds is the median over rounds of the p99 difference.

With no --brokers the embedded broker runs in this process, so its CPU is
counted too and competes with the stage for the machine's cores.

Examples:
  flexiflow bench throughput
  flexiflow bench throughput --brokers 127.0.0.1:19092 --partitions 6 --consumers 2 --format json
  flexiflow bench throughput --scaling --rounds 1 --batches 3000
  flexiflow bench throughput --variants stage-noop --profile prof/   # then: go tool pprof bin/flexiflow prof/cpu-stage-noop.pprof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: use table or json", format)
			}
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			if o.Kafka, err = g.kafkaConfig(brokers, log); err != nil {
				return err
			}
			if len(o.Kafka.Brokers) == 0 {
				b, err := stream.StartEmbedded("127.0.0.1:0", o.Partitions)
				if err != nil {
					return err
				}
				defer b.Close()
				o.Kafka.Brokers = b.Addrs()
			} else if err := stream.Ping(cmd.Context(), o.Kafka); err != nil {
				return err
			}
			if variants != "" {
				o.Variants = strings.Split(variants, ",")
			}
			o.Log = log
			o.Progress = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }
			if scaling {
				cells, err := throughput.Scaling(cmd.Context(), o, []int{1, 3, 6}, []int{1, 2, 3})
				if err != nil {
					return err
				}
				if format == "json" {
					return writeJSON(cmd.OutOrStdout(), cells)
				}
				throughput.WriteScaling(cmd.OutOrStdout(), cells)
				return nil
			}
			rep, err := throughput.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			rep.WriteTable(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port]; empty starts the embedded broker")
	f.IntVar(&o.Batches, "batches", 2000, "batches in the backlog each variant drains")
	f.IntVar(&o.BatchSize, "batch-size", 100, "records per batch")
	f.IntVar(&o.RecordBytes, "record-bytes", 1024, "payload bytes per record")
	f.IntVar(&o.Partitions, "partitions", 3, "partitions of the input and output topics")
	f.IntVar(&o.Consumers, "consumers", 1, "consumers per variant")
	f.IntVar(&o.Workers, "workers", 0, "batches each stage consumer processes at once (0: the stage default, one per CPU)")
	f.StringVar(&variants, "variants", "", "comma-separated variants (default raw,stage-noop,stage-demo)")
	f.StringVar(&format, "format", "table", "table or json")
	f.IntVar(&o.Rounds, "rounds", 3, "rounds per variant, round-robin, of throughput and of latency; each variant's median round is reported")
	f.IntVar(&o.Warmup, "warmup", 500, "batches through an untimed raw loop before measuring")
	f.BoolVar(&scaling, "scaling", false, "instead: raw and stage-noop throughput for partitions 1, 3, 6 × consumers 1, 2, 3")
	f.StringVar(&o.ProfileDir, "profile", "", "directory for per-variant CPU and allocation profiles (go tool pprof)")
	f.BoolVar(&o.Trace, "trace", false, "with --profile, also write per-variant execution traces (go tool trace); slows the run, so its figures are not throughput figures")
	return cmd
}

func newBenchBanditCmd() *cobra.Command {
	var scenario, policies, format, out string
	var seeds int
	cmd := &cobra.Command{
		Use:   "bandit --scenario FILE",
		Short: "Compare ranking policies on a simulated drifting workflow",
		Long: `Simulate a workflow whose models' pass probabilities and runtimes change over
time (a scenario file, see bench/scenarios/) and report, for FlexiFlow's
policy and every baseline, what each batch cost to deliver and how far each
policy is from an oracle that knows the true parameters at every moment.

Every policy meets the same luck: a model's outcome on a batch is drawn from
(seed, batch, step, model), so differences are the policies'.

Columns: cost per delivered batch (mean over seeds, ±95% interval), the
share of batches delivered, regret (cost per delivered over the oracle's,
minus one), detection delay (batches until the policy's first choice follows
a lasting change of the oracle's), and the time of one ranking decision.

Examples:
  flexiflow bench bandit --scenario bench/scenarios/abrupt-swap.yaml
  flexiflow bench bandit --scenario s.yaml --seeds 5 --policies flexiflow,ucb1 --format json
  flexiflow bench bandit --scenario s.yaml --out results/   # also CSV series (and a PNG plot in a build with -tags plot)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := sim.Load(scenario)
			if err != nil {
				return err
			}
			names := sim.Policies
			if policies != "" {
				names = strings.Split(policies, ",")
			}
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: use table or json", format)
			}
			rep, err := sim.Bench(sc, names, seeds)
			if err != nil {
				return err
			}
			if format == "json" {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if out != "" {
				if err := rep.WriteSeries(out); err != nil {
					return fmt.Errorf("writing --out %s: %w", out, err)
				}
				if format == "table" {
					if sim.PlotsEnabled {
						fmt.Fprintf(cmd.OutOrStdout(), "series and plot written to %s/%s.{csv,png}\n", out, sc.Name)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "series written to %s/%s.csv (this build draws no plot; build with -tags plot for %s.png)\n", out, sc.Name, sc.Name)
					}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "scenario file, YAML or JSON (required)")
	f.IntVar(&seeds, "seeds", 20, "seeds to average over")
	f.StringVar(&policies, "policies", "", "comma-separated policies (default: all: "+strings.Join(sim.Policies, ",")+")")
	f.StringVar(&format, "format", "table", "table or json")
	f.StringVar(&out, "out", "", "directory for a per-batch CSV and (with -tags plot) a cumulative-regret PNG")
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}

// writeJSON writes v as indented JSON, the bench commands' --format json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
