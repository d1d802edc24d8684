package bandit

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// arm is a simulated model: it passes with probability p and costs c ms.
type simArm struct{ p, c float64 }

// play runs n cascade decisions against arms and returns how often each
// model was ranked first over the last quarter.
func play(pol Policy, arms []simArm, n int, rng *rand.Rand) []int {
	first := make([]int, len(arms))
	var rank []int
	for t := 0; t < n; t++ {
		rank = pol.Rank(rank)
		for _, i := range rank { // the cascade: try in order until one passes
			pass := rng.Float64() < arms[i].p
			pol.Observe(i, pass, arms[i].c*(0.8+0.4*rng.Float64()))
			if pass {
				break
			}
		}
		if t >= 3*n/4 {
			first[rank[0]]++
		}
	}
	return first
}

func TestConvergesToCostOverPassOrder(t *testing.T) {
	// c/p: cheap 5/0.5=10, mid 8/0.95≈8.4, dear 40/0.99≈40. mid is best.
	arms := []simArm{{p: 0.5, c: 5}, {p: 0.95, c: 8}, {p: 0.99, c: 40}}
	pol, err := New("thompson", len(arms), nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	first := play(pol, arms, 4000, rand.New(rand.NewPCG(1, 2)))
	if share := float64(first[1]) / 1000; share < 0.7 {
		t.Errorf("model with the lowest cost/pass ranked first %.0f%% of the time late on, want ≥ 70%% (counts %v)", 100*share, first)
	}
	est := pol.Estimates(nil)
	if est[1].Score() >= est[0].Score() || est[1].Score() >= est[2].Score() {
		t.Errorf("estimates do not order mid first: %+v", est)
	}
}

func TestFollowsAnAbruptSwap(t *testing.T) {
	arms := []simArm{{p: 0.95, c: 5}, {p: 0.95, c: 20}}
	pol, _ := New("thompson", 2, nil, 3)
	rng := rand.New(rand.NewPCG(5, 6))
	if first := play(pol, arms, 1000, rng); first[0] < 200 {
		t.Fatalf("before the swap the cheap model should lead: %v", first)
	}
	arms[0].p = 0.05 // the cheap model degrades: c/p goes from 5 to 100, against 21 for the other
	leader := NewLeader(0.2)
	var rank []int
	for range 20 { // the shares of the decisions before the swap
		rank = pol.Rank(rank)
		leader.Update(rank[0], pol.Estimates(nil))
	}
	if leader.Current() != 0 {
		t.Fatalf("before the swap the leader is model %d, want 0", leader.Current())
	}
	switched := -1
	for t := 0; t < 400 && switched < 0; t++ {
		rank = pol.Rank(rank)
		for _, i := range rank {
			pass := rng.Float64() < arms[i].p
			pol.Observe(i, pass, arms[i].c)
			if pass {
				break
			}
		}
		if changed, _ := leader.Update(rank[0], pol.Estimates(nil)); changed && leader.Current() == 1 {
			switched = t
		}
	}
	if switched < 0 || switched > 100 {
		t.Errorf("leader switched to the robust model after %d decisions, want within 100", switched)
	}
}

func TestDeterministicGivenSeed(t *testing.T) {
	run := func() []int {
		pol, _ := New("thompson", 4, Params{"discount": 0.95}, 42)
		var out, rank []int
		for i := 0; i < 200; i++ {
			rank = pol.Rank(rank)
			out = append(out, rank...)
			pol.Observe(rank[0], i%3 != 0, float64(1+rank[0]))
		}
		return out
	}
	if a, b := run(), run(); !slices.Equal(a, b) {
		t.Error("same seed and observations gave different rankings")
	}
}

func TestParams(t *testing.T) {
	cases := []struct {
		p    Params
		name string
		ok   bool
	}{
		{nil, "thompson", true},
		{Params{"discount": 1}, "", true},
		{Params{"discount": 0}, "thompson", false},
		{Params{"prior_fail": -1}, "thompson", false},
		{Params{"discont": 0.9}, "thompson", false},
		{nil, "oracle-of-delphi", false},
	}
	for _, c := range cases {
		_, err := New(c.name, 3, c.p, 1)
		if (err == nil) != c.ok {
			t.Errorf("New(%q, %v): err %v, want ok=%v", c.name, c.p, err, c.ok)
		}
	}
}

func TestLeaderHysteresis(t *testing.T) {
	l := NewLeader(0.2)
	est := []Estimate{{Pulls: 5}, {Pulls: 5}, {Pulls: 0}}
	// Decisions before anything was observed do not count.
	for range 50 {
		l.Update(2, make([]Estimate, 3))
	}
	for i := range 20 {
		if changed, _ := l.Update(1, est); changed || (i < 19) != (l.Current() < 0) {
			t.Fatalf("decision %d: changed %v, leader %d; want the first leader elected at the 20th decision, without a switch", i+1, changed, l.Current())
		}
	}
	if l.Current() != 1 {
		t.Fatalf("leader %d after 20 decisions ranking model 1 first", l.Current())
	}
	// Ranked first by turns, as a sampling policy does with two close
	// models: the leader holds.
	for i := range 200 {
		if changed, _ := l.Update(i%2, est); changed {
			t.Fatalf("switched at decision %d while the two models alternate", i)
		}
	}
	// Model 0 ranked first from now on: it leads within 20 decisions.
	switched := -1
	for i := range 40 {
		if changed, from := l.Update(0, est); changed {
			if from != 1 || l.Current() != 0 {
				t.Fatalf("switch from %d to %d, want 1 to 0", from, l.Current())
			}
			switched = i
			break
		}
	}
	if switched < 0 || switched > 20 {
		t.Errorf("switched after %d decisions ranked first, want within 20", switched)
	}
}

func TestRankAllocatesNothing(t *testing.T) {
	pol, _ := New("thompson", 8, nil, 1)
	for i := 0; i < 8; i++ {
		pol.Observe(i, i%2 == 0, float64(i+1))
	}
	rank := make([]int, 0, 8)
	if a := testing.AllocsPerRun(100, func() { rank = pol.Rank(rank) }); a != 0 {
		t.Errorf("Rank allocates %.1f times per decision, want 0", a)
	}
}

func BenchmarkRank8(b *testing.B) {
	pol, _ := New("thompson", 8, nil, 1)
	for i := 0; i < 64; i++ {
		pol.Observe(i%8, i%3 != 0, float64(i%8+1))
	}
	rank := make([]int, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		rank = pol.Rank(rank)
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, name := range []string{"thompson", "flexiflow"} {
		t.Run(name, func(t *testing.T) { testStateRoundTrip(t, name) })
	}
}

func testStateRoundTrip(t *testing.T, name string) {
	a, _ := New(name, 3, nil, 9)
	for i := 0; i < 50; i++ {
		a.Observe(i%3, i%4 != 0, float64(1+i%3))
	}
	if d, ok := a.(*FlexiFlow); ok {
		for i := 0; i < 30; i++ {
			d.ObserveDownstream(i%3, float64(i%3), i%4 != 0)
		}
	}
	a.Rank(nil)
	saved, err := a.(Stateful).MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(name, 3, nil, 12345) // another seed: the state must override it
	if err := b.(Stateful).RestoreState(saved); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		ra, rb := a.Rank(nil), b.Rank(nil)
		if !slices.Equal(ra, rb) {
			t.Fatalf("decision %d after restore: %v vs %v", i, ra, rb)
		}
		a.Observe(ra[0], i%2 == 0, 2)
		b.Observe(rb[0], i%2 == 0, 2)
	}
	if ea, eb := a.Estimates(nil), b.Estimates(nil); !slices.Equal(ea, eb) {
		t.Errorf("estimates differ after restore: %v vs %v", ea, eb)
	}
	c, _ := New(name, 4, nil, 1)
	if err := c.(Stateful).RestoreState(saved); err == nil {
		t.Error("restored a 3-model state into a 4-model policy")
	}
	if err := c.(Stateful).RestoreState([]byte("junk")); err == nil {
		t.Error("restored junk")
	}
}

func TestFlexiFlowRankAllocatesNothing(t *testing.T) {
	pol := NewFlexiFlow(8, DefaultFlexiFlowConfig, 1)
	for i := 0; i < 400; i++ {
		pol.Observe(i%8, i%3 != 0, float64(i%8+1))
		pol.ObserveDownstream(i%8, 3, i%5 != 0)
	}
	rank := make([]int, 0, 8)
	if a := testing.AllocsPerRun(100, func() { rank = pol.Rank(rank) }); a != 0 {
		t.Errorf("Rank allocates %.1f times per decision, want 0", a)
	}
}

// BenchmarkFlexiFlowRank8 is one decision of FlexiFlow's policy over 8
// models with enough evidence that the posteriors are informative.
func BenchmarkFlexiFlowRank8(b *testing.B) {
	pol := NewFlexiFlow(8, DefaultFlexiFlowConfig, 1)
	for i := 0; i < 400; i++ {
		pol.Observe(i%8, i%3 != 0, float64(i%8+1))
		pol.ObserveDownstream(i%8, 3, i%5 != 0)
	}
	rank := make([]int, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		rank = pol.Rank(rank)
	}
}
