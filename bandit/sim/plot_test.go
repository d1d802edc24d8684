//go:build plot

package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSeriesPNG checks the cumulative-regret plot is a PNG.
func TestWriteSeriesPNG(t *testing.T) {
	rep := seriesReport(t)
	dir := t.TempDir()
	if err := rep.WriteSeries(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, rep.Scenario+".png"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
		t.Errorf("%s.png is not a PNG plot (%d bytes)", rep.Scenario, len(b))
	}
}
