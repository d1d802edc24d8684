package bandit

import "testing"

// TestContextualKeepsContextsApart: what one context learns does not move
// another's ranking, and the state of every context survives a round trip.
func TestContextualKeepsContextsApart(t *testing.T) {
	mk := func(seed uint64) Policy { return NewFlexiFlow(2, DefaultFlexiFlowConfig, seed) }
	c := NewContextual(mk, 1)
	for i := 0; i < 300; i++ {
		c.SetContext("after-a") // model 0 fails here, 1 passes
		c.Observe(0, false, 1)
		c.Observe(1, true, 1)
		c.SetContext("after-b") // and the other way round
		c.Observe(0, true, 1)
		c.Observe(1, false, 1)
	}
	first := func(ctx string, p Policy) int {
		c, ok := p.(*Contextual)
		if ok {
			c.SetContext(ctx)
		}
		return p.Rank(nil)[0]
	}
	if a, b := first("after-a", c), first("after-b", c); a != 1 || b != 0 {
		t.Fatalf("first choice after a: %d, after b: %d; want 1 and 0", a, b)
	}
	saved, err := c.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	d := NewContextual(mk, 99)
	if err := d.RestoreState(saved); err != nil {
		t.Fatal(err)
	}
	if a, b := first("after-a", d), first("after-b", d); a != 1 || b != 0 {
		t.Fatalf("restored: first choice after a: %d, after b: %d; want 1 and 0", a, b)
	}
	if got := d.Contexts(); len(got) != 3 { // "", after-a, after-b
		t.Errorf("contexts %v", got)
	}
	// A state saved before the step was contextual restores context "".
	plain := NewFlexiFlow(2, DefaultFlexiFlowConfig, 1)
	for i := 0; i < 300; i++ {
		plain.Observe(0, false, 1)
		plain.Observe(1, true, 1)
	}
	old, _ := plain.MarshalState()
	e := NewContextual(mk, 5)
	if err := e.RestoreState(old); err != nil {
		t.Fatal(err)
	}
	if got := first("", e); got != 1 {
		t.Errorf("an old state restored into context \"\" ranks %d first, want 1", got)
	}
}
