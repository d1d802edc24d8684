package sim

import "github.com/flexiflow/flexiflow/bandit"

// oracle knows every model's true pass probability and mean latency at every
// batch, and the downstream multipliers. It orders a step's models by their
// expected cost to deliver the batch: the model's cost plus, if it passes,
// the expected cost of the remaining steps (each ordered the same way),
// over the probability that the batch passes here and is delivered.
type oracle struct {
	sc  *Scenario
	scr [][]float64 // per step scratch for scores
	ord [][]int     // per step scratch for orders
}

func newOracle(sc *Scenario) *oracle {
	o := &oracle{sc: sc}
	for _, st := range sc.Steps {
		o.scr = append(o.scr, make([]float64, len(st.Models)))
		o.ord = append(o.ord, make([]int, 0, len(st.Models)))
	}
	return o
}

// rank orders step s's models at batch t when the previous step's choice
// multiplies this step's pass probabilities by mult.
func (o *oracle) rank(dst []int, t float64, s int, mult float64) []int {
	ord, _, _ := o.plan(t, s, mult)
	return append(dst[:0], ord...)
}

// plan returns step s's optimal order and the expected cost and delivery
// probability of the batch from step s on.
func (o *oracle) plan(t float64, s int, mult float64) (order []int, cost, deliver float64) {
	st := o.sc.Steps[s]
	k := len(st.Models)
	p := make([]float64, k)
	c := make([]float64, k)
	v := make([]float64, k) // expected downstream cost if model i serves
	q := make([]float64, k) // downstream delivery probability if model i serves
	for i, m := range st.Models {
		p[i] = min(1, m.Pass.At(t)*mult)
		c[i] = m.LatencyMs.At(t)
		v[i], q[i] = 0, 1
		if s+1 < len(o.sc.Steps) {
			d := 1.0
			if f, ok := st.Downstream[m.Name]; ok {
				d = f
			}
			_, v[i], q[i] = o.plan(t, s+1, d)
		}
		switch {
		case p[i] <= 0 || q[i] <= 0:
			o.scr[s][i] = 1e18 + c[i]
		default:
			o.scr[s][i] = (c[i] + p[i]*v[i]) / (p[i] * q[i])
		}
	}
	order = bandit.RankByScore(o.ord[s], o.scr[s])
	o.ord[s] = order
	reach := 1.0
	for _, i := range order {
		cost += reach * (c[i] + p[i]*v[i])
		deliver += reach * p[i] * q[i]
		reach *= 1 - p[i]
	}
	return order, cost, deliver
}

// clock is the simulator's current batch and the multiplier the previous
// step's choice puts on this step's pass probabilities.
type clock struct{ t, mult float64 }

// oraclePolicy puts the oracle behind the bandit.Policy interface: it reads
// the truth from the simulator's clock and learns nothing.
type oraclePolicy struct {
	o    *oracle
	now  *clock
	step int
}

func (p *oraclePolicy) Rank(dst []int) []int {
	return p.o.rank(dst, p.now.t, p.step, p.now.mult)
}

func (p *oraclePolicy) Observe(int, bool, float64) {}

func (p *oraclePolicy) Estimates(dst []bandit.Estimate) []bandit.Estimate {
	dst = dst[:0]
	for _, m := range p.o.sc.Steps[p.step].Models {
		dst = append(dst, bandit.Estimate{PassProb: m.Pass.At(p.now.t) * p.now.mult, Cost: m.LatencyMs.At(p.now.t)})
	}
	return dst
}
