package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
)

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s, %d seeds (cost = summed latency in ms; regret = cost per delivered / oracle's - 1)\n", r.Scenario, r.Seeds)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tcost/delivered\t±95%\tdelivered\tregret\tdetection delay\tdecision ns\t")
	for _, p := range r.Policies {
		delay := fmt.Sprintf("%.0f", p.DetectionDelay)
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f%%\t%+.3f\t%s\t%.0f\t\n", p.Name, p.CostPerDelivered, p.CostPerDeliveredCI95,
			100*p.DeliveryRate, p.Regret, delay, p.DecisionNs)
	}
	return tw.Flush()
}

// regretCurve is one policy's cumulative regret over batches, sampled every
// tenth batch, as the plot draws it.
type regretCurve struct {
	policy string
	index  int // the policy's position in the report, which picks its colour
	x, y   []float64
}

// WriteSeries writes seed 1's per-batch series as <scenario>.csv (batch,
// policy, cost, delivered, cumulative regret) into dir and, in a build with
// the plot tag (see PlotsEnabled), a plot of cumulative regret over time as
// <scenario>.png. A build without it writes the CSV alone.
func (r *Report) WriteSeries(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, r.Scenario+".csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	cw := csv.NewWriter(f)
	if err := cw.Write([]string{"batch", "policy", "cost_ms", "delivered", "cumulative_regret_ms"}); err != nil {
		return err
	}
	oracle := r.Series[Oracle]
	var curves []regretCurve
	for pi, pr := range r.Policies {
		s := r.Series[pr.Name]
		c := regretCurve{policy: pr.Name, index: pi}
		var regret float64
		for b := range s.BatchCost {
			regret += s.BatchCost[b] - oracle.BatchCost[b]
			if err := cw.Write([]string{strconv.Itoa(b), pr.Name, strconv.FormatFloat(s.BatchCost[b], 'f', 3, 64),
				strconv.FormatBool(s.BatchDelivered[b]), strconv.FormatFloat(regret, 'f', 3, 64)}); err != nil {
				return err
			}
			if b%10 == 0 {
				c.x = append(c.x, float64(b))
				c.y = append(c.y, regret)
			}
		}
		if pr.Name != Oracle {
			curves = append(curves, c)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return writeRegretPlot(filepath.Join(dir, r.Scenario+".png"), r.Scenario, curves)
}
