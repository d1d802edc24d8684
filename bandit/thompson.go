package bandit

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// ThompsonConfig tunes the cost-aware Thompson sampling policy.
type ThompsonConfig struct {
	// Discount is the forgetting factor applied to every model's evidence at
	// each observation of the step (0 < Discount <= 1). 0.98 remembers about
	// the last 50 attempts; 1 never forgets.
	Discount float64
	// PriorPass and PriorFail are the Beta prior's pseudo-counts of passing
	// and failing batches for a model never observed.
	PriorPass, PriorFail float64
	// CostPriorMs is the cost assumed for a model never observed; 0 means
	// "the average of the models observed so far".
	CostPriorMs float64
	// OverheadMs is added to every attempt's cost: what a failed attempt
	// wastes beyond the model's own runtime (the round trip through the
	// retry topic, a transaction, queueing). Without it a very cheap model
	// that rarely passes ranks first and most batches pay for a retry hop.
	OverheadMs float64
	// PerModelDiscount applies Discount to a model's evidence only when
	// that model is observed (a window over each model's own last attempts)
	// instead of to every model at every attempt of the step. Models that
	// are rarely tried then keep what was learned about them.
	PerModelDiscount bool
}

// DefaultThompsonConfig is used for parameters a workflow leaves out.
var DefaultThompsonConfig = ThompsonConfig{Discount: 0.98, PriorPass: 1, PriorFail: 1, OverheadMs: 5}

// arm is the discounted evidence about one model.
type arm struct {
	pass, fail float64 // discounted counts of passing and failing attempts
	n          float64 // discounted number of cost observations
	sumLog     float64 // discounted sum of log(cost)
	sumLog2    float64 // discounted sum of log(cost)^2
}

// Thompson is cost-aware Thompson sampling with forgetting. For each
// decision it samples every model's pass probability from its Beta
// posterior and its typical cost from the posterior of its mean log-cost,
// then ranks by sampled cost over sampled pass probability. Discounting all
// evidence at every observation lets a model that went bad lose its rank
// and lets a model that recovered be found again.
type Thompson struct {
	cfg    ThompsonConfig
	arms   []arm
	src    *rand.PCG
	rng    *rand.Rand
	beta   distuv.Beta
	scores []float64
}

// NewThompson returns the policy for k models.
func NewThompson(k int, cfg ThompsonConfig, seed uint64) *Thompson {
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return &Thompson{
		cfg:    cfg,
		arms:   make([]arm, k),
		src:    src,
		rng:    rand.New(src),
		beta:   distuv.Beta{Src: src},
		scores: make([]float64, k),
	}
}

// Observe implements Policy.
func (t *Thompson) Observe(i int, passed bool, cost float64) {
	g := t.cfg.Discount
	for j := range t.arms {
		if t.cfg.PerModelDiscount && j != i {
			continue
		}
		a := &t.arms[j]
		a.pass *= g
		a.fail *= g
		a.n *= g
		a.sumLog *= g
		a.sumLog2 *= g
	}
	a := &t.arms[i]
	if passed {
		a.pass++
	} else {
		a.fail++
	}
	l := math.Log(math.Max(cost, 1e-3))
	a.n++
	a.sumLog += l
	a.sumLog2 += l * l
}

// priorLogCost is the log-cost assumed for a model with no cost evidence.
func (t *Thompson) priorLogCost() float64 {
	if t.cfg.CostPriorMs > 0 {
		return math.Log(t.cfg.CostPriorMs)
	}
	var n, s float64
	for _, a := range t.arms {
		n += a.n
		s += a.sumLog
	}
	if n == 0 {
		return 0
	}
	return s / n
}

// logCostPosterior returns the mean and standard deviation of the posterior
// of a model's mean log-cost. One pseudo-observation at the prior keeps a
// barely observed model's estimate sane.
func (t *Thompson) logCostPosterior(a *arm, prior float64) (mean, sd float64) {
	n := a.n + 1
	mean = (a.sumLog + prior) / n
	variance := 1.0 // spread of log-costs assumed before evidence (factor e)
	if a.n >= 2 {
		m := a.sumLog / a.n
		variance = math.Max(a.sumLog2/a.n-m*m, 0.01)
	}
	return mean, math.Sqrt(variance / n)
}

// Rank implements Policy.
func (t *Thompson) Rank(dst []int) []int {
	prior := t.priorLogCost()
	for i := range t.arms {
		a := &t.arms[i]
		p := math.Max(t.samplePass(a), 1e-6)
		m, sd := t.logCostPosterior(a, prior)
		c := math.Exp(m+sd*t.rng.NormFloat64()) + t.cfg.OverheadMs
		t.scores[i] = c / p
	}
	return RankByScore(dst, t.scores)
}

// samplePass draws a pass probability from the model's Beta posterior. With
// plenty of evidence the Beta is close to a normal with the same mean and
// variance, which is several times cheaper to draw from.
func (t *Thompson) samplePass(a *arm) float64 {
	alpha, beta := t.cfg.PriorPass+a.pass, t.cfg.PriorFail+a.fail
	if n := alpha + beta; n > 30 {
		mu := alpha / n
		return min(1, max(0, mu+math.Sqrt(mu*(1-mu)/(n+1))*t.rng.NormFloat64()))
	}
	t.beta.Alpha, t.beta.Beta = alpha, beta
	return t.beta.Rand()
}

// passMean is the posterior mean of a model's pass probability.
func (t *Thompson) passMean(a *arm) float64 {
	return (t.cfg.PriorPass + a.pass) / (t.cfg.PriorPass + t.cfg.PriorFail + a.pass + a.fail)
}

// Estimates implements Policy.
func (t *Thompson) Estimates(dst []Estimate) []Estimate {
	dst = dst[:0]
	prior := t.priorLogCost()
	for i := range t.arms {
		a := &t.arms[i]
		m, _ := t.logCostPosterior(a, prior)
		dst = append(dst, Estimate{
			PassProb: t.passMean(a),
			Cost:     math.Exp(m) + t.cfg.OverheadMs,
			Pulls:    a.pass + a.fail,
		})
	}
	return dst
}

// thompsonSpec declares the thompson policy.
func thompsonSpec() *Spec {
	return &Spec{
		Name: "thompson", Doc: "cost-aware Thompson sampling over each model's pass probability and cost at its own step",
		Params: thompsonParams(DefaultThompsonConfig),
		build: func(k int, p Params, seed uint64) Policy {
			return NewThompson(k, thompsonFrom(DefaultThompsonConfig, p), seed)
		},
	}
}
