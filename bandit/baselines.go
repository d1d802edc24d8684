package bandit

import (
	"math"
	"math/rand/v2"
)

// The baselines FlexiFlow's policy is measured against (flexiflow bench
// bandit). Each is a plain, well-known algorithm behind the same Policy
// interface; a workflow may name any of them too.

// tally is undiscounted evidence about one model.
type tally struct{ n, pass, cost float64 }

func (t tally) p() float64 { return t.pass / t.n }
func (t tally) c() float64 { return t.cost / t.n }

func (t *tally) add(passed bool, cost float64) {
	t.n++
	t.cost += cost
	if passed {
		t.pass++
	}
}

func estimatesOf(dst []Estimate, arms []tally) []Estimate {
	dst = dst[:0]
	for _, a := range arms {
		e := Estimate{PassProb: 0.5, Pulls: a.n}
		if a.n > 0 {
			e.PassProb, e.Cost = a.p(), a.c()
		}
		dst = append(dst, e)
	}
	return dst
}

// shuffle writes a random permutation of 0..k-1 into dst[:0].
func shuffle(dst []int, k int, rng *rand.Rand) []int {
	dst = dst[:0]
	for i := 0; i < k; i++ {
		dst = append(dst, i)
	}
	for i := k - 1; i > 0; i-- {
		j := rng.IntN(i + 1)
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// costOverPass is the empirical expected cost to pass; unobserved models
// score -Inf so that they are tried first.
func costOverPass(a tally) float64 {
	if a.n == 0 {
		return math.Inf(-1)
	}
	return a.c() / math.Max(a.p(), 1e-3)
}

// Random ranks models in a fresh random order every time.
type Random struct {
	k   int
	rng *rand.Rand
}

// NewRandom returns the random policy for k models.
func NewRandom(k int, seed uint64) *Random { return &Random{k: k, rng: rand.New(rand.NewPCG(seed, 1))} }

func (r *Random) Rank(dst []int) []int       { return shuffle(dst, r.k, r.rng) }
func (r *Random) Observe(int, bool, float64) {}
func (r *Random) Estimates(dst []Estimate) []Estimate {
	return append(dst[:0], make([]Estimate, r.k)...)
}

// EpsilonGreedy ranks by empirical cost over pass rate, and with probability
// Epsilon explores a random order instead.
type EpsilonGreedy struct {
	Epsilon float64
	arms    []tally
	rng     *rand.Rand
	scores  []float64
}

// NewEpsilonGreedy returns the ε-greedy policy for k models.
func NewEpsilonGreedy(k int, eps float64, seed uint64) *EpsilonGreedy {
	return &EpsilonGreedy{Epsilon: eps, arms: make([]tally, k), rng: rand.New(rand.NewPCG(seed, 2)), scores: make([]float64, k)}
}

func (e *EpsilonGreedy) Rank(dst []int) []int {
	if e.rng.Float64() < e.Epsilon {
		return shuffle(dst, len(e.arms), e.rng)
	}
	for i, a := range e.arms {
		e.scores[i] = costOverPass(a)
	}
	return RankByScore(dst, e.scores)
}
func (e *EpsilonGreedy) Observe(i int, passed bool, cost float64) { e.arms[i].add(passed, cost) }
func (e *EpsilonGreedy) Estimates(dst []Estimate) []Estimate      { return estimatesOf(dst, e.arms) }

// UCB1 is cost-aware UCB1: it ranks by empirical cost over an optimistic
// (upper confidence bound) pass probability.
type UCB1 struct {
	arms   []tally
	t      float64
	scores []float64
}

// NewUCB1 returns the UCB1 policy for k models.
func NewUCB1(k int) *UCB1 { return &UCB1{arms: make([]tally, k), scores: make([]float64, k)} }

func (u *UCB1) Rank(dst []int) []int {
	for i, a := range u.arms {
		u.scores[i] = optimisticScore(a, u.t)
	}
	return RankByScore(dst, u.scores)
}
func (u *UCB1) Observe(i int, passed bool, cost float64) { u.t++; u.arms[i].add(passed, cost) }
func (u *UCB1) Estimates(dst []Estimate) []Estimate      { return estimatesOf(dst, u.arms) }

func optimisticScore(a tally, t float64) float64 {
	if a.n == 0 {
		return math.Inf(-1)
	}
	p := math.Min(1, a.p()+math.Sqrt(2*math.Log(math.Max(t, 2))/a.n))
	return a.c() / p
}

// SWUCB is UCB1 over a sliding window of the step's last Window attempts,
// so evidence older than the window no longer counts.
type SWUCB struct {
	arms   []tally
	window []swObs
	next   int
	full   bool
	scores []float64
}

type swObs struct {
	arm    int
	passed bool
	cost   float64
}

// NewSWUCB returns sliding-window UCB for k models over the last window
// attempts.
func NewSWUCB(k, window int) *SWUCB {
	return &SWUCB{arms: make([]tally, k), window: make([]swObs, window), scores: make([]float64, k)}
}

func (s *SWUCB) Rank(dst []int) []int {
	t := float64(s.next)
	if s.full {
		t = float64(len(s.window))
	}
	for i, a := range s.arms {
		s.scores[i] = optimisticScore(a, t)
	}
	return RankByScore(dst, s.scores)
}

func (s *SWUCB) Observe(i int, passed bool, cost float64) {
	if s.full { // forget the observation falling out of the window
		old := s.window[s.next]
		a := &s.arms[old.arm]
		a.n--
		a.cost -= old.cost
		if old.passed {
			a.pass--
		}
	}
	s.window[s.next] = swObs{i, passed, cost}
	s.arms[i].add(passed, cost)
	s.next++
	if s.next == len(s.window) {
		s.next, s.full = 0, true
	}
}
func (s *SWUCB) Estimates(dst []Estimate) []Estimate { return estimatesOf(dst, s.arms) }

// CascadeUCB is the cascading bandit without costs (CascadeUCB1): it ranks
// by an upper confidence bound on the pass probability alone.
type CascadeUCB struct {
	arms   []tally
	t      float64
	scores []float64
}

// NewCascadeUCB returns CascadeUCB1 for k models.
func NewCascadeUCB(k int) *CascadeUCB {
	return &CascadeUCB{arms: make([]tally, k), scores: make([]float64, k)}
}

func (c *CascadeUCB) Rank(dst []int) []int {
	for i, a := range c.arms {
		if a.n == 0 {
			c.scores[i] = math.Inf(-1)
			continue
		}
		c.scores[i] = -(a.p() + math.Sqrt(1.5*math.Log(math.Max(c.t, 2))/a.n))
	}
	return RankByScore(dst, c.scores)
}
func (c *CascadeUCB) Observe(i int, passed bool, cost float64) { c.t++; c.arms[i].add(passed, cost) }
func (c *CascadeUCB) Estimates(dst []Estimate) []Estimate      { return estimatesOf(dst, c.arms) }

// StaticBest explores for its first Warmup decisions, putting each model
// first in turn, then fixes the order by the empirical cost over pass rate
// it saw: the "pick the best model on a sample, then deploy it" practice.
type StaticBest struct {
	Warmup int
	arms   []tally
	t      int
	fixed  []int
	scores []float64
}

// NewStaticBest returns the static policy for k models.
func NewStaticBest(k, warmup int) *StaticBest {
	return &StaticBest{Warmup: warmup, arms: make([]tally, k), scores: make([]float64, k)}
}

func (s *StaticBest) Rank(dst []int) []int {
	if s.fixed != nil {
		return append(dst[:0], s.fixed...)
	}
	s.t++
	if s.t > s.Warmup {
		for i, a := range s.arms {
			s.scores[i] = costOverPass(a)
		}
		s.fixed = RankByScore(nil, s.scores)
		return append(dst[:0], s.fixed...)
	}
	dst = dst[:0]
	k := len(s.arms)
	for j := 0; j < k; j++ {
		dst = append(dst, (s.t+j)%k)
	}
	return dst
}
func (s *StaticBest) Observe(i int, passed bool, cost float64) {
	if s.fixed == nil {
		s.arms[i].add(passed, cost)
	}
}
func (s *StaticBest) Estimates(dst []Estimate) []Estimate { return estimatesOf(dst, s.arms) }

// epsilonGreedySpec declares the epsilon-greedy policy.
func epsilonGreedySpec() *Spec {
	return &Spec{
		Name: "epsilon-greedy", Doc: "empirical cost over pass rate, exploring a random order with probability epsilon",
		Params: []Param{{Name: "epsilon", Default: 0.1, Min: 0, Max: 1, Doc: "probability of exploring"}},
		build:  func(k int, p Params, seed uint64) Policy { return NewEpsilonGreedy(k, p["epsilon"], seed) },
	}
}

// ucb1Spec declares the ucb1 policy.
func ucb1Spec() *Spec {
	return &Spec{
		Name: "ucb1", Doc: "cost-aware UCB1: cost over an optimistic pass probability",
		build: func(k int, _ Params, _ uint64) Policy { return NewUCB1(k) },
	}
}

// swUcbSpec declares the sw-ucb policy.
func swUcbSpec() *Spec {
	return &Spec{
		Name: "sw-ucb", Doc: "UCB1 over a sliding window of the step's last attempts",
		Params: []Param{{Name: "window", Default: 300, Min: 1, Max: 1e6, Integer: true, Doc: "attempts the window holds"}},
		build:  func(k int, p Params, _ uint64) Policy { return NewSWUCB(k, int(p["window"])) },
	}
}

// cascadeUcbSpec declares the cascade-ucb policy.
func cascadeUcbSpec() *Spec {
	return &Spec{
		Name: "cascade-ucb", Doc: "CascadeUCB1: an upper confidence bound on the pass probability alone, costs ignored",
		build: func(k int, _ Params, _ uint64) Policy { return NewCascadeUCB(k) },
	}
}

// randomSpec declares the random policy.
func randomSpec() *Spec {
	return &Spec{
		Name: "random", Doc: "a fresh random order for every batch",
		build: func(k int, _ Params, seed uint64) Policy { return NewRandom(k, seed) },
	}
}

// staticBestSpec declares the static-best policy.
func staticBestSpec() *Spec {
	return &Spec{
		Name: "static-best", Doc: "tries each model first in turn for warmup batches, then fixes the order it saw was cheapest to pass",
		Params: []Param{{Name: "warmup", Default: 100, Min: 0, Max: 1e9, Integer: true, Doc: "decisions before the order is fixed"}},
		build:  func(k int, p Params, _ uint64) Policy { return NewStaticBest(k, int(p["warmup"])) },
	}
}
