//go:build !plot

package sim

// PlotsEnabled tells whether this build writes PNG plots. This one does not:
// the plotting library stays out of the served binary. Rebuild with
// -tags plot to write them.
const PlotsEnabled = false

// writeRegretPlot writes no PNG in a build without the plot tag, and is no
// error: WriteSeries still writes the CSV series, and the bench command
// succeeds. Check PlotsEnabled to tell the user no plot was written.
func writeRegretPlot(string, string, []regretCurve) error {
	return nil
}
