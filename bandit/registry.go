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

// builtinSpecs lists every policy a workflow may name. Each is declared
// next to its implementation; adding a policy is its file and one line
// here.
func builtinSpecs() []*Spec {
	return []*Spec{flexiflowSpec(), thompsonSpec(), epsilonGreedySpec(), ucb1Spec(), swUcbSpec(), cascadeUcbSpec(), randomSpec(), staticBestSpec()}
}

// Specs returns the declarations of every policy, in the order the docs
// list them.
func Specs() []*Spec { return builtinSpecs() }

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
	out := make([]string, len(builtinSpecs()))
	for i, s := range builtinSpecs() {
		out[i] = s.Name
	}
	return out
}

func lookup(name string) (*Spec, error) {
	if name == "" {
		name = "flexiflow"
	}
	for _, s := range builtinSpecs() {
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

// Resolve checks a policy's parameters and returns them with every
// default filled in: what the policy New builds will run with.
func Resolve(name string, params Params) (Params, error) {
	_, full, err := resolve(name, params)
	return full, err
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
