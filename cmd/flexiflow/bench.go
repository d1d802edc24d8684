package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/bandit/sim"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that print figures anyone can rerun",
	}
	cmd.AddCommand(newBenchBanditCmd())
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
  flexiflow bench bandit --scenario s.yaml --out results/   # also CSV series and a PNG plot`,
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
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
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
					fmt.Fprintf(cmd.OutOrStdout(), "series and plot written to %s/%s.{csv,png}\n", out, sc.Name)
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
	f.StringVar(&out, "out", "", "directory for a per-batch CSV and a cumulative-regret PNG")
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}
