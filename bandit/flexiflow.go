package bandit

import (
	"math"
)

// FlexiFlowConfig tunes FlexiFlow's policy.
type FlexiFlowConfig struct {
	ThompsonConfig
	// DownstreamDiscount forgets old evidence about what a model's output
	// does in later steps (0 < d <= 1).
	DownstreamDiscount float64
}

// DefaultFlexiFlowConfig is used for parameters a workflow leaves out. The
// benchmark sets OverheadMs to 0, because its cost is model latency alone.
var DefaultFlexiFlowConfig = FlexiFlowConfig{
	ThompsonConfig:     ThompsonConfig{Discount: 0.99, PriorPass: 1, PriorFail: 1, OverheadMs: 5, PerModelDiscount: true},
	DownstreamDiscount: 0.995,
}

// FlexiFlow is cost-aware Thompson sampling that also accounts for the
// workflow's structure. Besides each model's pass probability p and cost c
// at its own step, it learns, per model, the expected cost D its passing
// batches go on to incur in later steps and the probability q that they are
// then delivered. It ranks by the sampled cost to deliver,
// (c + p·D) / (p·q): a model whose output passes its own assertions but
// makes the next step fail or work harder ranks lower than its local
// figures suggest. At the last step D = 0 and q = 1, and the rule reduces to
// the cascade order c/p.
type FlexiFlow struct {
	*Thompson
	dcfg  FlexiFlowConfig
	down  []downArm
	cost  []float64 // mean cost per model (overhead included), valid unless dirty
	dirty bool
}

type downArm struct {
	n, cost, delivered float64 // discounted count, downstream cost sum, deliveries
}

// NewFlexiFlow returns the policy for k models.
func NewFlexiFlow(k int, cfg FlexiFlowConfig, seed uint64) *FlexiFlow {
	return &FlexiFlow{Thompson: NewThompson(k, cfg.ThompsonConfig, seed), dcfg: cfg, down: make([]downArm, k),
		cost: make([]float64, k), dirty: true}
}

// Observe implements Policy.
func (f *FlexiFlow) Observe(i int, passed bool, cost float64) {
	f.Thompson.Observe(i, passed, cost)
	f.dirty = true
}

// meanCosts refreshes the cached mean cost of every model. Costs are
// observed on every attempt, so their mean is known well long before the
// pass probability is: Rank samples only p. A model never tried costs
// nothing yet, so it is tried early, once.
func (f *FlexiFlow) meanCosts() {
	t := f.Thompson
	prior := t.priorLogCost()
	for i := range t.arms {
		f.cost[i] = t.cfg.OverheadMs
		if a := &t.arms[i]; a.n > 0 {
			m, _ := t.logCostPosterior(a, prior)
			f.cost[i] += math.Exp(m)
		}
	}
	f.dirty = false
}

// ObserveDownstream records what a batch that model i passed cost in later
// steps and whether it was delivered.
func (f *FlexiFlow) ObserveDownstream(i int, cost float64, delivered bool) {
	g := f.dcfg.DownstreamDiscount
	for j := range f.down {
		d := &f.down[j]
		d.n *= g
		d.cost *= g
		d.delivered *= g
	}
	d := &f.down[i]
	d.n++
	d.cost += cost
	if delivered {
		d.delivered++
	}
}

// downstream returns model i's expected downstream cost and delivery
// probability (with one pseudo-observation of a delivered, free batch).
func (f *FlexiFlow) downstream(i int) (cost, deliver float64) {
	d := &f.down[i]
	return d.cost / (d.n + 1), (d.delivered + 1) / (d.n + 1)
}

// Rank implements Policy.
func (f *FlexiFlow) Rank(dst []int) []int {
	t := f.Thompson
	if f.dirty {
		f.meanCosts()
	}
	for i := range t.arms {
		p := math.Max(t.samplePass(&t.arms[i]), 1e-6)
		dc, q := f.downstream(i)
		t.scores[i] = (f.cost[i] + p*dc) / (p * math.Max(q, 1e-6))
	}
	return RankByScore(dst, t.scores)
}

// Estimates implements Policy; Cost includes the expected downstream cost
// and PassProb the probability of passing here and being delivered.
func (f *FlexiFlow) Estimates(dst []Estimate) []Estimate {
	dst = f.Thompson.Estimates(dst)
	for i := range dst {
		dc, q := f.downstream(i)
		dst[i].Cost += dst[i].PassProb * dc
		dst[i].PassProb *= q
	}
	return dst
}

// flexiflowSpec declares the flexiflow policy.
func flexiflowSpec() *Spec {
	return &Spec{
		Name: "flexiflow",
		Doc:  "cost-aware Thompson sampling that also learns what each model's output costs the later steps (the default)",
		Params: append(thompsonParams(DefaultFlexiFlowConfig.ThompsonConfig),
			Param{Name: "downstream_discount", Default: DefaultFlexiFlowConfig.DownstreamDiscount, Min: 0, Max: 1, MinOpen: true,
				Doc: "forgetting factor of the evidence about later steps"},
			Param{Name: "per_model_discount", Default: 1, Min: 0, Max: 1, Integer: true,
				Doc: "1: discount a model's evidence only when it is observed; 0: at every attempt of the step"}),
		build: func(k int, p Params, seed uint64) Policy {
			cfg := DefaultFlexiFlowConfig
			cfg.ThompsonConfig = thompsonFrom(cfg.ThompsonConfig, p)
			cfg.DownstreamDiscount = p["downstream_discount"]
			cfg.PerModelDiscount = p["per_model_discount"] != 0
			return NewFlexiFlow(k, cfg, seed)
		},
	}
}
