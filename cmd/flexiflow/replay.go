package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/bandit/sim"
)

// replayJSON is bench replay's --format json.
type replayJSON struct {
	Table        string             `json:"table"`
	Items        int                `json:"items"`
	Steps        []string           `json:"steps"`
	Seeds        int                `json:"seeds"`
	OracleWindow int                `json:"oracle_window"`
	Policies     []sim.PolicyReport `json:"policies"`
}

func newBenchReplayCmd() *cobra.Command {
	var table, policies, format string
	var o sim.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay --table FILE.csv",
		Short: "Compare ranking policies on recorded outcomes of real models",
		Long: `Replay a table of recorded outcomes (what each model of each step did on
each item of a real stream, after each model that could have served the
step before) through every policy, as a workflow would run it: per item
and step the policy ranks the step's models, the cascade tries them in
that order until one passes, and each attempt costs its row's cost_ms.
The model that passed is the next step's upstream; an item no model passes
is dead-lettered.

The table is a CSV with the header
  item,step,upstream,model,passed,cost_ms
Items are integers from 0 in stream order, steps come in the order they
first appear, upstream is empty at the first step, and a later step has a
row for every (upstream model, model) pair of every item.

References: "oracle" orders each step by the expected cost to deliver that
the true outcomes of the --oracle-window items around the current one give,
downstream effects included; regret is against it. "clairvoyant" is the
cheapest delivering path of each item, for reference. "thompson" is
flexiflow's sampling without downstream credit: the difference is what the
workflow's structure buys.

Examples:
  flexiflow bench replay --table bench/tables/digits-drift.csv
  flexiflow bench replay --table t.csv --seeds 10 --oracle-window 100 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: use table or json", format)
			}
			f, err := os.Open(table)
			if err != nil {
				return err
			}
			defer f.Close()
			t, err := sim.ReadTable(f, table)
			if err != nil {
				return err
			}
			t.Name = strings.TrimSuffix(filepath.Base(table), filepath.Ext(table))
			if policies != "" {
				o.Policies = strings.Split(policies, ",")
			}
			rep, err := sim.ReplayBench(t, o)
			if err != nil {
				return err
			}
			var steps []string
			for _, s := range t.Steps {
				steps = append(steps, s.Name)
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), replayJSON{Table: t.Name, Items: t.Items, Steps: steps, Seeds: rep.Seeds, OracleWindow: o.OracleWindow, Policies: rep.Policies})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "table %s: %d items, steps %s, %d seeds, oracle window %d (cost = summed cost_ms; regret = cost per delivered / oracle's - 1)\n",
				t.Name, t.Items, strings.Join(steps, " → "), rep.Seeds, o.OracleWindow)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "policy\tcost/delivered\t±95%\tdelivered\tregret\tdecision ns\t")
			for _, p := range rep.Policies {
				fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f%%\t%+.3f\t%.0f\t\n", p.Name, p.CostPerDelivered, p.CostPerDeliveredCI95, 100*p.DeliveryRate, p.Regret, p.DecisionNs)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&table, "table", "", "CSV of recorded outcomes, header "+sim.TableHeader+" (required)")
	fl.IntVar(&o.Seeds, "seeds", 5, "orderings of ties and sampling to average over")
	fl.IntVar(&o.OracleWindow, "oracle-window", 200, "items around the current one whose true outcomes the oracle orders by")
	fl.IntVar(&o.FeedbackLag, "feedback-lag", 0, "apply each item's downstream reports this many items later, as a running workflow gets them after the batches behind")
	fl.StringVar(&policies, "policies", "", "comma-separated policies (default: all: "+strings.Join(sim.ReplayPolicies, ",")+")")
	fl.StringVar(&format, "format", "table", "table or json")
	_ = cmd.MarkFlagRequired("table")
	atLeast(fl, "seeds", "1")
	atLeast(fl, "oracle-window", "1")
	return cmd
}
