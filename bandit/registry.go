package bandit

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Spec declares one policy a workflow may name: its parameters (with their
// defaults and valid ranges) and how to build it. New and Check read the
// same declarations, so what a workflow may write, what the loader refuses
// and what the docs list cannot disagree.
type Spec struct {
	Name   string
	Doc    string
	Params []Param
	// build makes the policy for k models from params that Check accepted,
	// with every default filled in.
	build func(k int, p Params, seed uint64) Policy
}

// Param is one tuning knob of a policy.
type Param struct {
	Name    string
	Default float64
	// Min and Max bound the value (inclusive, unless MinOpen excludes Min).
	Min, Max float64
	MinOpen  bool
	// Integer values only (a window length, a count).
	Integer bool
	Doc     string
}

// Range describes the valid values in words, for messages and docs.
func (p Param) Range() string {
	lo := "["
	if p.MinOpen {
		lo = "("
	}
	r := fmt.Sprintf("%s%g, %g]", lo, p.Min, p.Max)
	if math.IsInf(p.Max, 1) {
		r = fmt.Sprintf("%s%g, ∞)", lo, p.Min)
	}
	if p.Integer {
		r = "an integer in " + r
	}
	return r
}

func (p Param) check(policy string, v float64) error {
	switch {
	case math.IsNaN(v) || v < p.Min || v > p.Max || (p.MinOpen && v == p.Min):
		return &ParamError{Param: p.Name, msg: fmt.Sprintf("%s: %s must be %s, got %g", policy, p.Name, p.Range(), v)}
	case p.Integer && v != math.Trunc(v):
		return &ParamError{Param: p.Name, msg: fmt.Sprintf("%s: %s must be %s, got %g", policy, p.Name, p.Range(), v)}
	}
	return nil
}

// ParamError is a policy parameter Check refused. Param is the parameter's
// name, or "" when the policy itself is unknown.
type ParamError struct {
	Param string
	msg   string
}

func (e *ParamError) Error() string { return e.msg }

var specs = []*Spec{
	{
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
	},
	{
		Name: "thompson", Doc: "cost-aware Thompson sampling over each model's pass probability and cost at its own step",
		Params: thompsonParams(DefaultThompsonConfig),
		build: func(k int, p Params, seed uint64) Policy {
			return NewThompson(k, thompsonFrom(DefaultThompsonConfig, p), seed)
		},
	},
	{
		Name: "epsilon-greedy", Doc: "empirical cost over pass rate, exploring a random order with probability epsilon",
		Params: []Param{{Name: "epsilon", Default: 0.1, Min: 0, Max: 1, Doc: "probability of exploring"}},
		build:  func(k int, p Params, seed uint64) Policy { return NewEpsilonGreedy(k, p["epsilon"], seed) },
	},
	{
		Name: "ucb1", Doc: "cost-aware UCB1: cost over an optimistic pass probability",
		build: func(k int, _ Params, _ uint64) Policy { return NewUCB1(k) },
	},
	{
		Name: "sw-ucb", Doc: "UCB1 over a sliding window of the step's last attempts",
		Params: []Param{{Name: "window", Default: 300, Min: 1, Max: 1e6, Integer: true, Doc: "attempts the window holds"}},
		build:  func(k int, p Params, _ uint64) Policy { return NewSWUCB(k, int(p["window"])) },
	},
	{
		Name: "cascade-ucb", Doc: "CascadeUCB1: an upper confidence bound on the pass probability alone, costs ignored",
		build: func(k int, _ Params, _ uint64) Policy { return NewCascadeUCB(k) },
	},
	{
		Name: "random", Doc: "a fresh random order for every batch",
		build: func(k int, _ Params, seed uint64) Policy { return NewRandom(k, seed) },
	},
	{
		Name: "static-best", Doc: "tries each model first in turn for warmup batches, then fixes the order it saw was cheapest to pass",
		Params: []Param{{Name: "warmup", Default: 100, Min: 0, Max: 1e9, Integer: true, Doc: "decisions before the order is fixed"}},
		build:  func(k int, p Params, _ uint64) Policy { return NewStaticBest(k, int(p["warmup"])) },
	},
}

func thompsonParams(d ThompsonConfig) []Param {
	return []Param{
		{Name: "discount", Default: d.Discount, Min: 0, Max: 1, MinOpen: true, Doc: "forgetting factor per observation; 1 never forgets"},
		{Name: "prior_pass", Default: d.PriorPass, Min: 0, Max: math.Inf(1), MinOpen: true, Doc: "Beta prior's pseudo-count of passing batches"},
		{Name: "prior_fail", Default: d.PriorFail, Min: 0, Max: math.Inf(1), MinOpen: true, Doc: "Beta prior's pseudo-count of failing batches"},
		{Name: "cost_prior_ms", Default: d.CostPriorMs, Min: 0, Max: math.Inf(1), Doc: "cost assumed for a model never observed; 0: the mean of those observed"},
		{Name: "overhead_ms", Default: d.OverheadMs, Min: 0, Max: math.Inf(1), Doc: "added to every attempt's cost: what a failed attempt wastes beyond the model"},
	}
}

func thompsonFrom(cfg ThompsonConfig, p Params) ThompsonConfig {
	cfg.Discount, cfg.PriorPass, cfg.PriorFail = p["discount"], p["prior_pass"], p["prior_fail"]
	cfg.CostPriorMs, cfg.OverheadMs = p["cost_prior_ms"], p["overhead_ms"]
	return cfg
}

// Names lists the policies' names.
func Names() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

func lookup(name string) (*Spec, error) {
	if name == "" {
		name = "flexiflow"
	}
	for _, s := range specs {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, &ParamError{msg: fmt.Sprintf("unknown policy %q; known policies: %s", name, strings.Join(Names(), ", "))}
}

// Check validates a policy name and its parameters without building it:
// unknown policies and parameters, values out of range, NaN. It returns a
// *ParamError naming the parameter, so a loader can point at its line.
func Check(name string, params Params) error {
	_, _, err := resolve(name, params)
	return err
}

// resolve checks params against the policy's spec and fills in defaults.
func resolve(name string, params Params) (*Spec, Params, error) {
	s, err := lookup(name)
	if err != nil {
		return nil, nil, err
	}
	full := Params{}
	for _, p := range s.Params {
		full[p.Name] = p.Default
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i := slices.IndexFunc(s.Params, func(p Param) bool { return p.Name == k })
		if i < 0 {
			known := "it takes no parameters"
			if len(s.Params) > 0 {
				names := make([]string, len(s.Params))
				for j, p := range s.Params {
					names[j] = p.Name
				}
				known = "known parameters: " + strings.Join(names, ", ")
			}
			return nil, nil, &ParamError{Param: k, msg: fmt.Sprintf("%s: unknown parameter %q; %s", s.Name, k, known)}
		}
		if err := s.Params[i].check(s.Name, params[k]); err != nil {
			return nil, nil, err
		}
		full[k] = params[k]
	}
	return s, full, nil
}
