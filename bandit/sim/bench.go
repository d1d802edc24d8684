package sim

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/flexiflow/flexiflow/bandit"
)

// Policies lists the policies Bench knows, FlexiFlow's first.
var Policies = []string{"flexiflow", "oracle", "static-best", "random", "epsilon-greedy", "ucb1", "sw-ucb", "cascade-ucb"}

// factory returns the named policy's factory for a scenario; nil means the
// oracle.
func factory(name string, sc *Scenario) (Factory, error) {
	mk := func(policy string, params bandit.Params) Factory {
		return func(_, k int, seed uint64) bandit.Policy {
			p, err := bandit.New(policy, k, params, seed)
			if err != nil {
				panic(err) // parameters are fixed here; a failure is a bug
			}
			return p
		}
	}
	switch name {
	case "oracle":
		return nil, nil
	case "flexiflow":
		// The simulated cost is model latency alone: no retry-hop overhead.
		return mk(name, bandit.Params{"overhead_ms": 0}), nil
	case "static-best":
		return mk(name, bandit.Params{"warmup": math.Max(1, math.Floor(float64(sc.Batches)/20))}), nil
	case "random", "epsilon-greedy", "ucb1", "sw-ucb", "cascade-ucb":
		return mk(name, nil), nil
	}
	return nil, fmt.Errorf("unknown policy %q; known: %s", name, strings.Join(Policies, ", "))
}

// PolicyReport is one policy's figures over all seeds.
type PolicyReport struct {
	Name                 string  `json:"name"`
	CostPerDelivered     float64 `json:"cost_per_delivered"`
	CostPerDeliveredCI95 float64 `json:"cost_per_delivered_ci95"`
	DeliveryRate         float64 `json:"delivery_rate"`
	Regret               float64 `json:"regret"`
	DetectionDelay       float64 `json:"detection_delay_batches"` // 0 when the scenario has no lasting change
	DecisionNs           float64 `json:"decision_ns"`
}

// Report is a scenario's results.
type Report struct {
	Scenario string         `json:"scenario"`
	Seeds    int            `json:"seeds"`
	Policies []PolicyReport `json:"policies"`
	// Series holds seed 1's per-batch results per policy, for plots.
	Series map[string]Result `json:"-"`
}

// Bench runs every named policy (the oracle always, for regret) on seeds
// 1..seeds.
func Bench(sc *Scenario, names []string, seeds int) (*Report, error) {
	if seeds < 1 {
		return nil, fmt.Errorf("seeds must be at least 1, got %d", seeds)
	}
	all := append([]string{}, names...)
	hasOracle := false
	for _, n := range names {
		hasOracle = hasOracle || n == Oracle
	}
	if !hasOracle {
		all = append(all, Oracle)
	}
	type job struct {
		policy string
		f      Factory
		seed   uint64
	}
	results := map[string][]Result{}
	var jobs []job
	for _, n := range all {
		f, err := factory(n, sc)
		if err != nil {
			return nil, err
		}
		results[n] = make([]Result, seeds)
		for s := 1; s <= seeds; s++ {
			jobs = append(jobs, job{n, f, uint64(s)})
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ch := make(chan job)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				r := Run(sc, j.f, j.seed, j.seed == 1)
				mu.Lock()
				results[j.policy][j.seed-1] = r
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()

	rep := &Report{Scenario: sc.Name, Seeds: seeds, Series: map[string]Result{}}
	oracleCPD := meanCPD(results[Oracle])
	for _, n := range names {
		rs := results[n]
		rep.Series[n] = rs[0]
		pr := PolicyReport{Name: n}
		var cpds []float64
		var delivered, batches, ns float64
		var delay float64
		var delays int
		for _, r := range rs {
			cpds = append(cpds, r.CostPerDelivered())
			delivered += float64(r.Delivered)
			batches += float64(r.Batches)
			ns += r.DecisionNs
			if !math.IsNaN(r.DetectionDelay) {
				delay += r.DetectionDelay
				delays++
			}
		}
		pr.CostPerDelivered, pr.CostPerDeliveredCI95 = meanCI(cpds)
		pr.DeliveryRate = delivered / batches
		pr.Regret = pr.CostPerDelivered/oracleCPD - 1
		pr.DecisionNs = ns / float64(len(rs))
		if delays > 0 {
			pr.DetectionDelay = delay / float64(delays)
		}
		rep.Policies = append(rep.Policies, pr)
	}
	if _, ok := rep.Series[Oracle]; !ok {
		rep.Series[Oracle] = results[Oracle][0]
	}
	return rep, nil
}

func meanCPD(rs []Result) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, r.CostPerDelivered())
	}
	m, _ := meanCI(xs)
	return m
}

// meanCI returns the mean and the half-width of its 95% confidence interval.
func meanCI(xs []float64) (mean, ci float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, 1.96 * math.Sqrt(ss/float64(len(xs)-1)) / math.Sqrt(float64(len(xs)))
}
