package plan

import (
	"testing"

	"github.com/flexiflow/flexiflow/schemas"
)

// TestSettledFirstChoices: the newest tenth of first attempts decides,
// a model under a tenth of them is exploration, and a step whose traces
// hold no first attempt (profiled --since a time after them) has none.
func TestSettledFirstChoices(t *testing.T) {
	if got := settledFirstChoices(nil); got != nil {
		t.Errorf("no first attempts: %v, want none", got)
	}
	var firsts []*schemas.Trace
	for i := range 200 {
		m := "old"
		if i >= 100 {
			m = "new"
			if i%20 == 0 {
				m = "explored"
			}
		}
		firsts = append(firsts, &schemas.Trace{Model: m, TsUs: int64(i), Attempt: 1})
	}
	got := settledFirstChoices(firsts)
	if len(got) != 1 || got["new"] == 0 {
		t.Errorf("settled on %v, want only new", got)
	}
}
