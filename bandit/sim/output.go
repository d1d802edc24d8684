package sim

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
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

// WriteSeries writes seed 1's per-batch series as <scenario>.csv (batch,
// policy, cost, delivered, cumulative regret) and a plot of cumulative
// regret over time as <scenario>.png into dir.
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
	cw.Write([]string{"batch", "policy", "cost_ms", "delivered", "cumulative_regret_ms"})
	oracle := r.Series[Oracle]
	p := plot.New()
	p.Title.Text = "cumulative regret: " + r.Scenario + " (seed 1)"
	p.X.Label.Text = "batch"
	p.Y.Label.Text = "cost above the oracle's (ms)"
	p.Add(plotter.NewGrid())
	for pi, pr := range r.Policies {
		s := r.Series[pr.Name]
		pts := make(plotter.XYs, 0, len(s.BatchCost)/10+1)
		var regret float64
		for b := range s.BatchCost {
			regret += s.BatchCost[b] - oracle.BatchCost[b]
			cw.Write([]string{strconv.Itoa(b), pr.Name, strconv.FormatFloat(s.BatchCost[b], 'f', 3, 64),
				strconv.FormatBool(s.BatchDelivered[b]), strconv.FormatFloat(regret, 'f', 3, 64)})
			if b%10 == 0 {
				pts = append(pts, plotter.XY{X: float64(b), Y: regret})
			}
		}
		if pr.Name == Oracle {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(pi)
		if pr.Name == "flexiflow" {
			line.Width = vg.Points(2.5)
			line.Color = color.RGBA{R: 200, A: 255}
		}
		p.Add(line)
		p.Legend.Add(pr.Name, line)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, r.Scenario+".png"))
}
