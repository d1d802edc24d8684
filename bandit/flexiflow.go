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
	// DriftRatio detects a change in what later steps make of a model's
	// output: when the cost to deliver of the model's last reports (a
	// moving average over about ten) departs from its long-run figure by
	// more than this share and by more than four standard deviations of
	// its reports' noise, the evidence about every other model's output is
	// cut to 30%, so models not tried since the change are tried
	// again rather than judged by what they did before it. 0 turns it off.
	DriftRatio float64
	// PassDrift detects a model going bad at its own step: when its pass
	// rate over about its last ten attempts falls below its estimate by
	// more than this (and by more than four standard deviations of ten
	// attempts' noise), its evidence restarts from those attempts and the
	// other models' is cut to 30%. 0 turns it off.
	PassDrift float64
}

// DefaultFlexiFlowConfig is used for parameters a workflow leaves out. The
// benchmark sets OverheadMs to 0, because its cost is model latency alone.
var DefaultFlexiFlowConfig = FlexiFlowConfig{
	ThompsonConfig:     ThompsonConfig{Discount: 0.99, PriorPass: 1, PriorFail: 1, OverheadMs: 5, PerModelDiscount: true},
	DownstreamDiscount: 0.995,
	DriftRatio:         0.5,
	PassDrift:          0.3,
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
	local []localDrift
	cost  []float64 // mean cost per model (overhead included), valid unless dirty
	dirty bool
}

type downArm struct {
	n, cost, delivered float64 // discounted count, downstream cost sum, deliveries
	// Drift detection. recentCost and recentDelivered are moving averages
	// of the model's last reports, recentN how many reports they hold (up
	// to about ten). dev is the moving average of each report's departure
	// from the long-run cost to deliver, (cost + overhead) − long·delivered,
	// which is 0 while nothing changes; devSq is a slower moving average of
	// its square, the scale of that departure's noise.
	recentCost, recentDelivered, recentN, dev, devSq float64
}

// Drift detection: the moving averages' weights, the reports it needs, the
// long-run reports a model needs before its departures count, how many
// standard deviations of noise a departure must exceed, and what is kept
// of the other models' evidence when it fires.
const (
	driftAlpha   = 0.1
	driftSlow    = 0.02
	driftRecent  = 10
	driftHistory = 50
	driftZ       = 4
	driftKeep    = 0.3
)

// NewFlexiFlow returns the policy for k models.
func NewFlexiFlow(k int, cfg FlexiFlowConfig, seed uint64) *FlexiFlow {
	return &FlexiFlow{Thompson: NewThompson(k, cfg.ThompsonConfig, seed), dcfg: cfg, down: make([]downArm, k), local: make([]localDrift, k),
		cost: make([]float64, k), dirty: true}
}

// Observe implements Policy.
func (f *FlexiFlow) Observe(i int, passed bool, cost float64) {
	f.Thompson.Observe(i, passed, cost)
	if f.dcfg.PassDrift > 0 {
		f.passDrift(i, passed)
	}
	f.dirty = true
}

// recentStep adds y to a moving average over about the last 1/driftAlpha
// values that holds n of them (the first value starts it).
func recentStep(avg, y, n float64) float64 {
	if n == 0 {
		return y
	}
	return avg + driftAlpha*(y-avg)
}

// localDrift follows a model's recent pass rate: a moving average over
// about its last ten attempts, and how many it holds.
type localDrift struct{ recent, n float64 }

// passDrift compares model i's recent pass rate with what its evidence
// says. When the recent rate is lower by more than four standard
// deviations of ten attempts' noise and by more than PassDrift, its
// evidence restarts from the recent attempts and the other models' is cut
// to 30%, so a model that went bad loses its rank within tens of attempts
// instead of the hundred its discount takes, and the others are tried
// again.
func (f *FlexiFlow) passDrift(i int, passed bool) {
	d := &f.local[i]
	y := 0.0
	if passed {
		y = 1
	}
	d.recent = recentStep(d.recent, y, d.n)
	d.n = min(d.n+1, 1/driftAlpha)
	a := &f.Thompson.arms[i]
	if d.n < driftRecent || a.pass+a.fail < driftHistory {
		return
	}
	p := f.passMean(a)
	noise := math.Sqrt(math.Max(p*(1-p), 0.01) * driftAlpha / (2 - driftAlpha))
	if dev := p - d.recent; dev <= driftZ*noise || dev <= f.dcfg.PassDrift {
		return
	}
	for j := range f.Thompson.arms {
		o := &f.Thompson.arms[j]
		if j == i {
			o.pass, o.fail = d.recent*d.n, (1-d.recent)*d.n
			continue
		}
		o.pass *= driftKeep
		o.fail *= driftKeep
	}
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
	if f.dcfg.DriftRatio > 0 {
		f.drift(i, cost, delivered)
	}
	d.n++
	d.cost += cost
	if delivered {
		d.delivered++
	}
}

// drift follows model i's recent reports and, when they depart from its
// long-run figure by more than both the configured share and the noise of
// its reports, cuts what is known about the other models' output.
func (f *FlexiFlow) drift(i int, cost float64, delivered bool) {
	d := &f.down[i]
	del := 0.0
	if delivered {
		del = 1
	}
	// The overhead of one attempt keeps a step whose later steps cost
	// almost nothing from seeing drift in noise.
	over := f.Thompson.cfg.OverheadMs
	if d.n > 0 {
		long := (d.cost/d.n + over) / math.Max(d.delivered/d.n, 0.01)
		y := cost + over - long*del
		d.dev += driftAlpha * (y - d.dev)
		d.devSq += driftSlow * (y*y - d.devSq)
	}
	d.recentCost = recentStep(d.recentCost, cost, d.recentN)
	d.recentDelivered = recentStep(d.recentDelivered, del, d.recentN)
	d.recentN = min(d.recentN+1, 1/driftAlpha)
	if d.recentN < driftRecent || d.n < driftHistory {
		return
	}
	// The moving average of independent departures has the variance
	// α/(2−α) of one departure's.
	noise := math.Sqrt(driftAlpha / (2 - driftAlpha) * d.devSq)
	if math.Abs(d.dev) <= driftZ*noise || math.Abs(d.dev) <= f.dcfg.DriftRatio*(d.cost/d.n+over) {
		return
	}
	for j := range f.down {
		o := &f.down[j]
		if j == i {
			// Its long-run figure restarts from its recent one.
			o.n, o.cost, o.delivered = o.recentN, o.recentCost*o.recentN, o.recentDelivered*o.recentN
			o.dev = 0
			continue
		}
		o.n *= driftKeep
		o.cost *= driftKeep
		o.delivered *= driftKeep
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
			Param{Name: "drift_ratio", Default: DefaultFlexiFlowConfig.DriftRatio, Min: 0, Max: 100,
				Doc: "relative change in a model's recent cost to deliver that makes the other models be tried again (0: off)"},
			Param{Name: "pass_drift", Default: DefaultFlexiFlowConfig.PassDrift, Min: 0, Max: 1,
				Doc: "fall in a model's recent pass rate below its estimate that restarts its evidence and makes the other models be tried again (0: off)"},
			Param{Name: "per_model_discount", Default: 1, Min: 0, Max: 1, Integer: true,
				Doc: "1: discount a model's evidence only when it is observed; 0: at every attempt of the step"}),
		build: func(k int, p Params, seed uint64) Policy {
			cfg := DefaultFlexiFlowConfig
			cfg.ThompsonConfig = thompsonFrom(cfg.ThompsonConfig, p)
			cfg.DownstreamDiscount = p["downstream_discount"]
			cfg.DriftRatio = p["drift_ratio"]
			cfg.PassDrift = p["pass_drift"]
			cfg.PerModelDiscount = p["per_model_discount"] != 0
			return NewFlexiFlow(k, cfg, seed)
		},
	}
}
