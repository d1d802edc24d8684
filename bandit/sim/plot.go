//go:build plot

package sim

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotsEnabled tells whether this build writes PNG plots: it does, since it
// was built with -tags plot.
const PlotsEnabled = true

// writeRegretPlot draws the cumulative-regret curves and saves them as a
// PNG at path.
func writeRegretPlot(path, scenario string, curves []regretCurve) error {
	p := plot.New()
	p.Title.Text = "cumulative regret: " + scenario + " (seed 1)"
	p.X.Label.Text = "batch"
	p.Y.Label.Text = "cost above the oracle's (ms)"
	p.Add(plotter.NewGrid())
	for _, c := range curves {
		pts := make(plotter.XYs, len(c.x))
		for i := range c.x {
			pts[i] = plotter.XY{X: c.x[i], Y: c.y[i]}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(c.index)
		if c.policy == "flexiflow" {
			line.Width = vg.Points(2.5)
			line.Color = color.RGBA{R: 200, A: 255}
		}
		p.Add(line)
		p.Legend.Add(c.policy, line)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
