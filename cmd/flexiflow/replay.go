package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/bandit/sim"
	"github.com/flexiflow/flexiflow/sinks/summary"
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
	var table, policies, format, items string
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
  flexiflow bench replay --table t.csv --seeds 10 --oracle-window 100 --format json
  flexiflow bench replay --table bench/tables/digits-trap.csv --items 800-1199  # one phase alone`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: use table or json", format)
			}
			t, err := readOutcomeTable(table)
			if err != nil {
				return err
			}
			if items != "" {
				if t, err = sliceItems(t, items); err != nil {
					return err
				}
			}
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
	fl.StringVar(&items, "items", "", "replay only items FROM-TO (inclusive, renumbered from 0), e.g. one phase of the stream: its oracle bounds what any policy can do there")
	_ = cmd.MarkFlagRequired("table")
	atLeast(fl, "seeds", "1")
	atLeast(fl, "oracle-window", "1")
	return cmd
}

// sliceItems narrows a table to --items FROM-TO, both inclusive.
func sliceItems(t *sim.Table, items string) (*sim.Table, error) {
	a, b, ok := strings.Cut(items, "-")
	from, err1 := strconv.Atoi(strings.TrimSpace(a))
	to, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--items %q: give FROM-TO, two item numbers, e.g. 800-1199", items)
	}
	s, err := t.Slice(from, to+1)
	if err != nil {
		return nil, fmt.Errorf("--items %s: %w", items, err)
	}
	s.Name = fmt.Sprintf("%s[%d-%d]", t.Name, from, to)
	return s, nil
}

// readOutcomeTable reads an outcome table, named after its file.
func readOutcomeTable(path string) (*sim.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := sim.ReadTable(f, path)
	if err != nil {
		return nil, err
	}
	t.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return t, nil
}

// priceRun prices a run's decisions with the table (the run's batch i is
// the table's item i) and puts them beside the table's oracle, static-best
// and clairvoyant path over the same items.
func priceRun(t *sim.Table, r *summary.Report) (*summary.Priced, error) {
	if len(r.Walks) > t.Items {
		return nil, fmt.Errorf("pricing with table %s: the run produced %d batches, the table has %d items", t.Name, len(r.Walks), t.Items)
	}
	index := make([]map[string]int, len(t.Steps))
	for s, st := range t.Steps {
		index[s] = map[string]int{}
		for m, name := range st.Models {
			index[s][name] = m
		}
	}
	if len(r.Steps) != len(t.Steps) {
		return nil, fmt.Errorf("pricing with table %s: the run has %d steps, the table %d", t.Name, len(r.Steps), len(t.Steps))
	}
	for s, st := range r.Steps {
		if st.Name != t.Steps[s].Name {
			return nil, fmt.Errorf("pricing with table %s: step %d is %s in the run, %s in the table", t.Name, s+1, st.Name, t.Steps[s].Name)
		}
	}
	walks := make([]sim.Walk, len(r.Walks))
	seen := make([][][]bool, len(r.Walks))
	for i, w := range r.Walks {
		if w == nil {
			continue
		}
		walks[i] = make(sim.Walk, len(w))
		seen[i] = make([][]bool, len(w))
		for s, atts := range w {
			for _, a := range atts {
				m, ok := index[s][a.Model]
				if !ok {
					return nil, fmt.Errorf("pricing with table %s: step %s tried model %s, which the table does not have", t.Name, t.Steps[s].Name, a.Model)
				}
				walks[i][s] = append(walks[i][s], m)
				seen[i][s] = append(seen[i][s], a.Passed)
			}
		}
		// A step after the last one reached stays empty.
		for len(walks[i]) > 0 && len(walks[i][len(walks[i])-1]) == 0 {
			walks[i], seen[i] = walks[i][:len(walks[i])-1], seen[i][:len(seen[i])-1]
		}
	}
	p, err := priceWalks(t.Head(len(r.Walks)), walks, seen)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(r.OverheadMs, func(ms float64) bool { return ms > 0 }) {
		if p.WithOverhead, err = priceWalks(t.Head(len(r.Walks)).WithOverhead(r.OverheadMs), walks, seen); err != nil {
			return nil, err
		}
		p.OverheadMs = r.OverheadMs
	}
	return p, nil
}

// priceWalks prices walks with the table and runs its references over
// the same items.
func priceWalks(t *sim.Table, walks []sim.Walk, seen [][][]bool) (*summary.Priced, error) {
	res, dis, err := sim.Price(t, walks, seen)
	if err != nil {
		return nil, err
	}
	ref, err := sim.ReplayBench(t, sim.ReplayOptions{Policies: []string{"static-best"}})
	if err != nil {
		return nil, err
	}
	p := &summary.Priced{Table: t.Name, CostMsPerDelivered: res.CostPerDelivered(), Delivered: res.Delivered, Disagreements: dis}
	for _, rp := range ref.Policies {
		p.References = append(p.References, summary.PricedReference{Name: rp.Name, CostMsPerDelivered: rp.CostPerDelivered})
		if rp.Name == sim.Oracle {
			p.Regret = p.CostMsPerDelivered/rp.CostPerDelivered - 1
		}
	}
	return p, nil
}

// writePriced prints a priced run.
func writePriced(w io.Writer, p *summary.Priced) {
	fmt.Fprintf(w, "\nthe run's decisions priced with table %s: %.3f ms per delivered batch (%d delivered), regret %+.3f against the oracle", p.Table, p.CostMsPerDelivered, p.Delivered, p.Regret)
	for _, r := range p.References {
		fmt.Fprintf(w, "; %s %.3f", r.Name, r.CostMsPerDelivered)
	}
	fmt.Fprintln(w)
	if o := p.WithOverhead; o != nil {
		fmt.Fprintf(w, "with each step's overhead_ms per attempt (%s ms, what the policies minimise): %.3f ms per delivered batch, regret %+.3f", joinFloats(p.OverheadMs), o.CostMsPerDelivered, o.Regret)
		for _, r := range o.References {
			fmt.Fprintf(w, "; %s %.3f", r.Name, r.CostMsPerDelivered)
		}
		fmt.Fprintln(w)
	}
	if p.Disagreements > 0 {
		fmt.Fprintf(w, "warning: %d attempts passed or failed otherwise in the table than in the run: the table was made from other batches or models (same --seed, --batch-size and workflow?)\n", p.Disagreements)
	}
}

// joinFloats writes 5, 0.5 as "5/0.5".
func joinFloats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(parts, "/")
}
