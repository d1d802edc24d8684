package plan

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Space is the values each knob may take.
type Space struct {
	Partitions []int `json:"partitions"`
	Consumers  []int `json:"consumers"`
	Workers    []int `json:"workers"`
	MaxPoll    []int `json:"max_poll"`
}

// DefaultSpace is the space plan searches: partitions up to 32,
// consumers per step up to 16, workers and max_poll in powers of two.
func DefaultSpace() Space {
	return Space{
		Partitions: []int{1, 2, 3, 4, 6, 8, 12, 16, 24, 32},
		Consumers:  []int{1, 2, 3, 4, 5, 6, 8, 10, 12, 16},
		Workers:    []int{1, 2, 4, 8, 16, 32, 64, 128, 256},
		MaxPoll:    []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
	}
}

// worstCores is the most cores a configuration of steps steps takes.
func (sp Space) worstCores(steps int, perConsumer float64) float64 {
	return float64(steps*slices.Max(sp.Consumers)) * perConsumer
}

// Size is how many configurations of steps steps the space holds.
func (sp Space) Size(steps int) float64 {
	return float64(len(sp.Partitions)) * math.Pow(float64(len(sp.Consumers)*len(sp.Workers)*len(sp.MaxPoll)), float64(steps))
}

// Objective is what a search optimises.
type Objective struct {
	// Kind is "throughput" (the most batches/s within BudgetCores) or
	// "cores" (the fewest cores that sustain Rate with p99 within SLO).
	Kind string `json:"kind"`
	// BudgetCores bounds the configurations a throughput search
	// considers (0: no bound).
	BudgetCores float64 `json:"budget_cores,omitempty"`
	// CoresPerConsumer is what one consumer costs (default 1).
	CoresPerConsumer float64 `json:"cores_per_consumer"`
	// Rate is the batches/s a cores search must sustain (the simulator's
	// workload should feed this rate).
	Rate float64 `json:"rate,omitempty"`
	// SLOP99Ms bounds the per-batch p99 (0: none).
	SLOP99Ms float64 `json:"slo_p99_ms,omitempty"`

	worstCores float64 // the most any configuration of the space takes
}

// Objective kinds.
const (
	Throughput = "throughput"
	Cores      = "cores"
)

// Check validates o.
func (o *Objective) Check() error {
	if o.CoresPerConsumer <= 0 {
		o.CoresPerConsumer = 1
	}
	switch o.Kind {
	case Throughput:
		if o.BudgetCores < 0 {
			return fmt.Errorf("--budget-cores must not be negative, got %g", o.BudgetCores)
		}
	case Cores:
		if o.Rate <= 0 {
			return errors.New("--objective cores needs --rate: the batches/s to sustain")
		}
	default:
		return fmt.Errorf("unknown objective %q: throughput (with --budget-cores) or cores (with --rate and --slo-p99)", o.Kind)
	}
	if o.SLOP99Ms < 0 {
		return fmt.Errorf("--slo-p99 must not be negative, got %gms", o.SLOP99Ms)
	}
	return nil
}

// miss is how far a prediction is from the objective's constraints (the
// core budget is enforced on proposals): 0 when it meets them, else the
// share by which it misses the rate plus the share by which its p99 is
// over the SLO.
func (o Objective) miss(p Prediction) float64 {
	m := 0.0
	if o.SLOP99Ms > 0 && p.P99Ms > o.SLOP99Ms {
		m += p.P99Ms/o.SLOP99Ms - 1
	}
	if o.Kind == Cores && !p.Sustained {
		m += max(0.01, 1-p.BatchesPerS/o.Rate)
	}
	return m
}

// missCost is what missing the constraints by a share of 1 costs in the
// search's energy, on top of a fixed cost for missing them at all (in a
// cores search, more than the largest configuration takes, so that one
// that misses never looks better than one that meets them; the first
// configuration's batches/s in a throughput search).
const missCost = 4

// energy is what the search minimises: for throughput, minus batches/s
// in units of scale; for cores, the cores, with p99's share of the SLO
// breaking ties. A configuration that misses the constraints pays for
// it in proportion, so the search can cross it on its way to a better
// one; the result is the best one that meets them.
func (o Objective) energy(c Config, p Prediction, scale float64) eval {
	m := o.miss(p)
	e := eval{feasible: m == 0, pred: p}
	if o.Kind == Cores {
		e.score = c.Cores(o.CoresPerConsumer)
		if m > 0 {
			e.score += o.worstCores + o.CoresPerConsumer*(1+missCost*m)
		}
		if o.SLOP99Ms > 0 {
			e.score += 0.01 * min(p.P99Ms/o.SLOP99Ms, 1)
		}
		return e
	}
	e.score = -p.BatchesPerS / scale
	if m > 0 {
		e.score += 1 + missCost*m
	}
	return e
}

// partitionSlack is how much worse (a share of the score) a configuration
// with fewer partitions may predict and still be preferred.
const partitionSlack = 0.02

// SearchOptions bound a search.
type SearchOptions struct {
	// Iterations is the most proposals (default 3000); Time the longest
	// it runs (default 10s).
	Iterations int
	Time       time.Duration
	// Temperature scales how readily a worse proposal is accepted
	// (default 0.05: one 5% worse is accepted with probability 1/e).
	Temperature float64
	Seed        uint64
	// Start is where the search starts (default: the space's values
	// nearest Default).
	Start *Config
}

// Result is what a search found.
type Result struct {
	Config    Config     `json:"config"`
	Predicted Prediction `json:"predicted"`
	Feasible  bool       `json:"feasible"`
	Cores     float64    `json:"cores"`
	// Iterations and Evaluated count proposals and distinct
	// configurations simulated; Elapsed is the search's wall time.
	Iterations int           `json:"iterations"`
	Evaluated  int           `json:"evaluated"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// BestP99Ms is, when no configuration met the SLO, the lowest p99
	// the search saw.
	BestP99Ms float64 `json:"best_p99_ms,omitempty"`
	Score     float64 `json:"-"`
}

type eval struct {
	score    float64
	feasible bool
	pred     Prediction
}

// better says whether a is a better result than b: one that meets the
// constraints beats one that does not, then the lower energy wins (for
// two that miss, the lower miss).
func (a eval) better(b eval) bool {
	if a.feasible != b.feasible {
		return a.feasible
	}
	return a.score < b.score
}

// state is a configuration as indices into the space: partitions, then
// per step consumers, workers and max_poll.
type state []int

func (sp Space) config(names []string, x state) Config {
	c := Config{Partitions: sp.Partitions[x[0]]}
	for i, name := range names {
		c.Steps = append(c.Steps, StepConfig{Name: name, Consumers: sp.Consumers[x[1+3*i]], Workers: sp.Workers[x[2+3*i]], MaxPoll: sp.MaxPoll[x[3+3*i]]})
	}
	return c
}

func (sp Space) axis(k int) []int {
	if k == 0 {
		return sp.Partitions
	}
	return [][]int{sp.Consumers, sp.Workers, sp.MaxPoll}[(k-1)%3]
}

// nearest is the index of the value in vs closest to v.
func nearest(vs []int, v int) int {
	best := 0
	for i, x := range vs {
		if abs(x-v) < abs(vs[best]-v) {
			best = i
		}
	}
	return best
}

func abs(x int) int { return max(x, -x) }

// Search looks for the configuration that does best on obj, simulating
// each with sim: Metropolis–Hastings over the space, each proposal one
// knob moved to a neighbouring value (now and then to any value), better
// proposals always accepted and worse ones with probability
// exp(−Δ/T), Δ the relative change in score; after a run of proposals
// without a new best it goes back to the best. The step names name the
// configuration's steps.
func Search(sim *Simulator, names []string, sp Space, obj Objective, o SearchOptions) (Result, error) {
	if err := obj.Check(); err != nil {
		return Result{}, err
	}
	if o.Iterations <= 0 {
		o.Iterations = 3000
	}
	if o.Time <= 0 {
		o.Time = 10 * time.Second
	}
	if o.Temperature <= 0 {
		o.Temperature = 0.05
	}
	dims := 1 + 3*len(names)
	for k := range dims {
		if len(sp.axis(k)) == 0 {
			return Result{}, errors.New("the search space has a knob with no values")
		}
	}
	minCores := float64(len(names)) * obj.CoresPerConsumer * float64(sp.Consumers[0])
	if obj.Kind == Throughput && obj.BudgetCores > 0 && obj.BudgetCores < minCores {
		return Result{}, fmt.Errorf("--budget-cores %g is too small: one consumer per step for %d steps takes %g cores (%g each, --cores-per-consumer)",
			obj.BudgetCores, len(names), minCores, obj.CoresPerConsumer)
	}
	obj.worstCores = sp.worstCores(len(names), obj.CoresPerConsumer)
	allowed := func(c Config) bool {
		return obj.Kind != Throughput || obj.BudgetCores == 0 || c.Cores(obj.CoresPerConsumer) <= obj.BudgetCores+1e-9
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(o.Seed, 0x5851f42d4c957f2d))
	x := make(state, dims)
	if o.Start != nil && len(o.Start.Steps) == len(names) {
		x[0] = nearest(sp.Partitions, o.Start.Partitions)
		for i, s := range o.Start.Steps {
			x[1+3*i], x[2+3*i], x[3+3*i] = nearest(sp.Consumers, s.Consumers), nearest(sp.Workers, s.Workers), nearest(sp.MaxPoll, s.MaxPoll)
		}
	}
	for !allowed(sp.config(names, x)) { // shrink consumers into the budget
		for i := range names {
			if x[1+3*i] > 0 {
				x[1+3*i]--
			}
		}
	}
	seen := map[string]eval{}
	var scale float64
	bestP99 := math.Inf(1)
	evaluate := func(x state) (eval, error) {
		key := string(fmt.Append(nil, []int(x)))
		if e, ok := seen[key]; ok {
			return e, nil
		}
		c := sp.config(names, x)
		p, err := sim.Run(c)
		if err != nil {
			return eval{}, err
		}
		if scale == 0 {
			scale = max(p.BatchesPerS, 1e-9)
		}
		if p.P99Ms > 0 {
			bestP99 = min(bestP99, p.P99Ms)
		}
		e := obj.energy(c, p, scale)
		seen[key] = e
		return e, nil
	}
	cur, err := evaluate(x)
	if err != nil {
		return Result{}, err
	}
	best, bestX := cur, append(state(nil), x...)
	sinceBest := 0
	iters := 0
	polished := false
	refused := 0
	y := make(state, dims)
	for ; iters < o.Iterations && time.Since(start) < o.Time; iters++ {
		copy(y, x)
		k := rng.IntN(dims)
		n := len(sp.axis(k))
		if n == 1 {
			continue
		}
		if rng.Float64() < 0.2 {
			y[k] = rng.IntN(n)
		} else if y[k] == 0 || (y[k] < n-1 && rng.IntN(2) == 0) {
			y[k]++
		} else {
			y[k]--
		}
		if !allowed(sp.config(names, y)) {
			iters-- // outside the budget: not a proposal
			if refused++; refused > 100*o.Iterations {
				break
			}
			continue
		}
		e, err := evaluate(y)
		if err != nil {
			return Result{}, err
		}
		delta := (e.score - cur.score) / max(math.Abs(cur.score), 1e-9)
		if delta <= 0 || rng.Float64() < math.Exp(-delta/o.Temperature) {
			copy(x, y)
			cur = e
		}
		if cur.better(best) {
			best, bestX, sinceBest = cur, append(state(nil), x...), 0
			polished = false
		} else if sinceBest++; sinceBest > 100 {
			// Stalled: polish the best one knob at a time, then go on
			// from it or, once it is polished, from anywhere.
			sinceBest = 0
			if !polished {
				b, bx, n, err := polish(evaluate, sp, bestX, best, allowed, names)
				if err != nil {
					return Result{}, err
				}
				iters += n
				best, bestX, polished = b, bx, true
				copy(x, bestX)
				cur = best
			} else {
				for k := range x {
					x[k] = rng.IntN(len(sp.axis(k)))
				}
				if !allowed(sp.config(names, x)) {
					copy(x, bestX)
				}
				if cur, err = evaluate(x); err != nil {
					return Result{}, err
				}
			}
		}
	}
	if !polished {
		b, bx, _, err := polish(evaluate, sp, bestX, best, allowed, names)
		if err != nil {
			return Result{}, err
		}
		best, bestX = b, bx
	}
	// Among the configurations as good as the best within the
	// simulation's noise, take the one with the fewest partitions: a
	// partition more costs the broker work (fetches, produce batches,
	// commit markers) the simulator sees only in part, and buys nothing
	// beyond the consumers that use it.
	for k := 0; k < bestX[0]; k++ {
		y := append(state(nil), bestX...)
		y[0] = k
		if !allowed(sp.config(names, y)) {
			continue
		}
		e, err := evaluate(y)
		if err != nil {
			return Result{}, err
		}
		if e.feasible == best.feasible && e.score <= best.score+partitionSlack*math.Abs(best.score) {
			best, bestX = e, y
			break
		}
	}
	c := sp.config(names, bestX)
	r := Result{Config: c, Predicted: best.pred, Feasible: best.feasible, Cores: c.Cores(obj.CoresPerConsumer),
		Iterations: iters, Evaluated: len(seen), Elapsed: time.Since(start), Score: best.score}
	if !r.Feasible && !math.IsInf(bestP99, 1) {
		r.BestP99Ms = bestP99
	}
	return r, nil
}

// polish moves each knob of x in turn to its best value, the others held,
// until no move improves: the local optimum around x. It returns the
// number of configurations it tried.
func polish(evaluate func(state) (eval, error), sp Space, x state, at eval, allowed func(Config) bool, names []string) (eval, state, int, error) {
	x = append(state(nil), x...)
	y := make(state, len(x))
	n := 0
	for improved := true; improved; {
		improved = false
		for k := range x {
			for v := range sp.axis(k) {
				if v == x[k] {
					continue
				}
				copy(y, x)
				y[k] = v
				if !allowed(sp.config(names, y)) {
					continue
				}
				e, err := evaluate(y)
				n++
				if err != nil {
					return at, x, n, err
				}
				if e.better(at) {
					at, improved = e, true
					copy(x, y)
				}
			}
		}
	}
	return at, x, n, nil
}

// Enumerate simulates every configuration of the space and returns the
// best: the answer Search is tested against on small spaces.
func Enumerate(sim *Simulator, names []string, sp Space, obj Objective) (Result, error) {
	if err := obj.Check(); err != nil {
		return Result{}, err
	}
	dims := 1 + 3*len(names)
	obj.worstCores = sp.worstCores(len(names), obj.CoresPerConsumer)
	x := make(state, dims)
	var best Result
	var bestE eval
	var scale float64
	for {
		c := sp.config(names, x)
		if obj.Kind != Throughput || obj.BudgetCores == 0 || c.Cores(obj.CoresPerConsumer) <= obj.BudgetCores+1e-9 {
			p, err := sim.Run(c)
			if err != nil {
				return Result{}, err
			}
			best.Evaluated++
			if scale == 0 {
				scale = max(p.BatchesPerS, 1e-9)
			}
			if e := obj.energy(c, p, scale); best.Evaluated == 1 || e.better(bestE) {
				bestE, best.Config, best.Predicted = e, c, p
			}
		}
		k := 0
		for ; k < dims; k++ {
			if x[k]++; x[k] < len(sp.axis(k)) {
				break
			}
			x[k] = 0
		}
		if k == dims {
			break
		}
	}
	best.Feasible, best.Score = bestE.feasible, bestE.score
	best.Cores = best.Config.Cores(obj.CoresPerConsumer)
	return best, nil
}
