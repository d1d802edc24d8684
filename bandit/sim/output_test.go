package sim

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// seriesReport runs a short benchmark whose series WriteSeries writes.
func seriesReport(t *testing.T) *Report {
	t.Helper()
	sc := load(t, "stationary")
	sc.Batches = 200
	rep, err := Bench(sc, []string{"flexiflow", "ucb1"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestWriteSeriesCSV checks the CSV series, which every build writes, and
// that a build without the plot tag writes no PNG and still succeeds.
func TestWriteSeriesCSV(t *testing.T) {
	rep := seriesReport(t)
	dir := filepath.Join(t.TempDir(), "out")
	if err := rep.WriteSeries(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, rep.Scenario+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(rep.Policies)*200; len(rows) != want {
		t.Fatalf("%d CSV rows, want %d (a header and one per policy and batch)", len(rows), want)
	}
	if h := rows[0]; len(h) != 5 || h[0] != "batch" || h[4] != "cumulative_regret_ms" {
		t.Errorf("CSV header %v", h)
	}
	_, err = os.Stat(filepath.Join(dir, rep.Scenario+".png"))
	if PlotsEnabled && err != nil {
		t.Errorf("a build with the plot tag wrote no PNG: %v", err)
	}
	if !PlotsEnabled && err == nil {
		t.Error("a build without the plot tag wrote a PNG")
	}
}
