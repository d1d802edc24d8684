package sim

import (
	"strings"
	"testing"
)

// TestPrice prices walks by hand-checkable rows of trapTable: model 0 is
// cheap (1 ms) or fast (2 ms), model 1 careful (4 ms) or slow (20 ms).
func TestPrice(t *testing.T) {
	tb, err := ReadTable(strings.NewReader(trapTable(10)), "trap.csv")
	if err != nil {
		t.Fatal(err)
	}
	walks := []Walk{
		{{0}, {0}},    // item 0: cheap, then fast passes (i%10 < 3): 1 + 2
		{{1}, {0}},    // item 1: careful, fast: 4 + 2
		nil,           // item 2: not part of the run
		{{0}, {0, 1}}, // item 3: cheap, fast fails, slow: 1 + 2 + 20
	}
	seen := [][][]bool{{{true}, {true}}, {{true}, {true}}, nil, {{true}, {true, true}}} // item 3's fast: the run saw a pass, the table a fail
	res, dis, err := Price(tb, walks, seen)
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches != 3 || res.Delivered != 3 || res.Cost != 32 || dis != 1 {
		t.Errorf("got %d batches, %d delivered, cost %.1f, %d disagreements; want 3, 3, 32, 1", res.Batches, res.Delivered, res.Cost, dis)
	}
	// An item whose last step no model passed is not delivered; one that
	// stopped before the last step is not either.
	res, _, err = Price(tb, []Walk{nil, nil, nil, {{0}, {0}}, {{0}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches != 2 || res.Delivered != 0 || res.Cost != 4 {
		t.Errorf("got %d batches, %d delivered, cost %.1f; want 2, 0, 4", res.Batches, res.Delivered, res.Cost)
	}
	if _, _, err := Price(tb, []Walk{{{5}}}, nil); err == nil || !strings.Contains(err.Error(), "model 5 of 2") {
		t.Errorf("an unknown model: %v", err)
	}
	if h := tb.Head(4); h.Items != 4 || tb.Items != 10 {
		t.Errorf("Head(4): %d items, the table %d", h.Items, tb.Items)
	}
}

// TestWithOverhead: every attempt at a step costs that step's overhead
// more, and the original table is left as it was.
func TestWithOverhead(t *testing.T) {
	tb, err := ReadTable(strings.NewReader(trapTable(10)), "trap.csv")
	if err != nil {
		t.Fatal(err)
	}
	ov := tb.WithOverhead([]float64{5, 0.5})
	walks := []Walk{{{0}, {0}}, nil, nil, {{0}, {0, 1}}} // 1+2 and 1+2+20, as in TestPrice
	res, _, err := Price(ov, walks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 + 23 + 2*5 + 3*0.5; res.Cost != want {
		t.Errorf("with overheads the walks cost %.2f, want %.2f", res.Cost, want)
	}
	if res, _, _ := Price(tb, walks, nil); res.Cost != 26 {
		t.Errorf("the original table now prices the walks at %.2f, want 26", res.Cost)
	}
}
