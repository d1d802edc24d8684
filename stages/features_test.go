package stages

import (
	"math"
	"slices"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
)

func TestSummarize(t *testing.T) {
	var recs []models.Record
	for i := 1; i <= 20; i++ {
		recs = append(recs, models.Record{"id": "x", "n": int32(i), "px": []any{float64(i), float64(i + 100)}})
	}
	got := summarize(recs, []string{"missing", "n", "px"})
	if len(got) != 2 || got[0].Name != "n" || got[1].Name != "px" {
		t.Fatalf("want summaries of n and px (a field no record has skipped), got %+v", got)
	}
	if none := summarize(recs, nil); none != nil {
		t.Errorf("no numeric fields: %+v", none)
	}
	n := got[0]
	if n.Count != 20 || n.Mean != 10.5 || n.Min != 1 || n.Max != 20 || math.Abs(n.Variance-35) > 1e-9 {
		t.Errorf("n: %+v (want count 20, mean 10.5, variance 35, min 1, max 20)", n)
	}
	if want := []float64{2, 6, 11, 16, 20}; !slices.Equal(n.Quantiles, want) {
		t.Errorf("n quantiles %v, want %v", n.Quantiles, want)
	}
	if px := got[1]; px.Count != 40 || px.Mean != 60.5 {
		t.Errorf("px pools list elements: %+v", px)
	}
}
