package sim

import (
	"math"
	"time"

	"github.com/flexiflow/flexiflow/bandit"
)

// Factory builds the policy for one step (index step, k models).
type Factory func(step, k int, seed uint64) bandit.Policy

// DownstreamObserver is bandit.DownstreamObserver: policies that learn what
// their models' outputs do in later steps.
type DownstreamObserver = bandit.DownstreamObserver

// Result is one policy's run on one seed.
type Result struct {
	Cost           float64 // summed over all batches
	Delivered      int
	Batches        int
	DecisionNs     float64 // mean time of one Rank call
	DetectionDelay float64 // mean batches to follow a change of the oracle's first choice; NaN if none
	// Per batch, in order: its cost and whether it was delivered (kept only
	// when Run is asked to).
	BatchCost      []float64
	BatchDelivered []bool
}

// CostPerDelivered is the run's total cost over its delivered batches.
func (r Result) CostPerDelivered() float64 {
	if r.Delivered == 0 {
		return math.Inf(1)
	}
	return r.Cost / float64(r.Delivered)
}

// Oracle is the name Run gives the policy that knows the truth.
const Oracle = "oracle"

// Run simulates the scenario with policies from f (or the oracle when f is
// nil) for one seed. keepSeries keeps the per-batch series.
func Run(sc *Scenario, f Factory, seed uint64, keepSeries bool) Result {
	steps := len(sc.Steps)
	or := newOracle(sc)
	var now clock // what the oracle policies may see: the batch, and the previous step's multiplier
	if f == nil {
		f = func(s, _ int, _ uint64) bandit.Policy { return &oraclePolicy{o: or, now: &now, step: s} }
	}
	pols := make([]bandit.Policy, steps)
	for s, st := range sc.Steps {
		pols[s] = f(s, len(st.Models), seed*7919+uint64(s))
	}
	res := Result{Batches: sc.Batches}
	if keepSeries {
		res.BatchCost = make([]float64, sc.Batches)
		res.BatchDelivered = make([]bool, sc.Batches)
	}
	det := make([]*detector, steps)
	for s := range det {
		det[s] = &detector{}
	}
	rank := make([]int, 0, 16)
	oracleRank := make([]int, 0, 16)
	served := make([]int, steps)     // model that passed the batch at each step, -1 if none
	costAt := make([]float64, steps) // cost of the batch up to and including step s
	for s := range served {
		served[s] = -1
	}
	var rankNs float64
	var ranks int
	for b := 0; b < sc.Batches; b++ {
		t := float64(b)
		cost := 0.0
		delivered := true
		prev := -1
		for s, st := range sc.Steps {
			mult := 1.0
			if s > 0 && prev >= 0 {
				if d, ok := sc.Steps[s-1].Downstream[sc.Steps[s-1].Models[prev].Name]; ok {
					mult = d
				}
			}
			now = clock{t: t, mult: mult}
			oracleRank = or.rank(oracleRank, t, s, mult)
			start := time.Now()
			rank = pols[s].Rank(rank)
			rankNs += float64(time.Since(start).Nanoseconds())
			ranks++
			det[s].observe(b, oracleRank[0], rank[0])
			passedAt := -1
			for _, i := range rank {
				m := st.Models[i]
				u1, u2, u3 := draws(seed, b, s, i)
				lat := m.LatencyMs.At(t) * math.Exp(m.Sigma()*normal(u2, u3)-m.Sigma()*m.Sigma()/2)
				pass := u1 < math.Min(1, m.Pass.At(t)*mult)
				cost += lat
				pols[s].Observe(i, pass, lat)
				if pass {
					passedAt = i
					break
				}
			}
			if passedAt < 0 {
				delivered = false
				break
			}
			served[s], costAt[s] = passedAt, cost
			prev = passedAt
		}
		for s := 0; s < steps && served[s] >= 0; s++ {
			if d, ok := pols[s].(DownstreamObserver); ok {
				d.ObserveDownstream(served[s], cost-costAt[s], delivered)
			}
		}
		res.Cost += cost
		if delivered {
			res.Delivered++
		}
		if keepSeries {
			res.BatchCost[b], res.BatchDelivered[b] = cost, delivered
		}
		for s := range served {
			served[s], costAt[s] = -1, 0
		}
	}
	if ranks > 0 {
		res.DecisionNs = rankNs / float64(ranks)
	}
	var sum float64
	var n int
	for _, d := range det {
		for _, v := range d.delays(sc.Batches) {
			sum += v
			n++
		}
	}
	res.DetectionDelay = math.NaN()
	if n > 0 {
		res.DetectionDelay = sum / float64(n)
	}
	return res
}

// draws returns three uniforms in (0,1) fixed by (seed, batch, step, model).
func draws(seed uint64, b, s, i int) (float64, float64, float64) {
	x := seed*0x9e3779b97f4a7c15 ^ uint64(b)*0xbf58476d1ce4e5b9 ^ uint64(s)*0x94d049bb133111eb ^ uint64(i)*0x2545f4914f6cdd1d
	return unit(splitmix(&x)), unit(splitmix(&x)), unit(splitmix(&x))
}

func splitmix(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func unit(v uint64) float64 { return (float64(v>>11) + 0.5) / (1 << 53) }

// normal turns two uniforms into a standard normal draw (Box–Muller).
func normal(u1, u2 float64) float64 {
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
