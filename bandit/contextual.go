package bandit

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
)

// Contextual keeps one policy per context and answers for the current one:
// a step whose models fare differently depending on which model served the
// step before it (its upstream) learns each upstream's ranking apart,
// instead of one ranking over a mix that changes whenever the upstream
// step switches. The caller names the context (SetContext) before every
// call; a context seen for the first time starts from the prior.
type Contextual struct {
	mk   func(seed uint64) Policy
	seed uint64
	subs map[string]Policy
	cur  Policy
}

// NewContextual returns a contextual policy whose per-context policies mk
// builds (each with its own seed derived from seed); its context is "".
func NewContextual(mk func(seed uint64) Policy, seed uint64) *Contextual {
	c := &Contextual{mk: mk, seed: seed, subs: map[string]Policy{}}
	c.SetContext("")
	return c
}

// SetContext makes key the context the next calls answer for.
func (c *Contextual) SetContext(key string) {
	p, ok := c.subs[key]
	if !ok {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		p = c.mk(c.seed ^ h.Sum64()) // the same seed for a context after every restart

		c.subs[key] = p
	}
	c.cur = p
}

// Contexts lists the contexts seen, sorted.
func (c *Contextual) Contexts() []string {
	out := make([]string, 0, len(c.subs))
	for k := range c.subs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Rank implements Policy for the current context.
func (c *Contextual) Rank(dst []int) []int { return c.cur.Rank(dst) }

// Observe implements Policy for the current context.
func (c *Contextual) Observe(i int, passed bool, cost float64) { c.cur.Observe(i, passed, cost) }

// Estimates implements Policy for the current context.
func (c *Contextual) Estimates(dst []Estimate) []Estimate { return c.cur.Estimates(dst) }

// ObserveDownstream passes a downstream report to the current context's
// policy, when it learns from them.
func (c *Contextual) ObserveDownstream(i int, cost float64, delivered bool) {
	if d, ok := c.cur.(DownstreamObserver); ok {
		d.ObserveDownstream(i, cost, delivered)
	}
}

type contextualState struct {
	Version  int                        `json:"version"`
	Contexts map[string]json.RawMessage `json:"contexts"`
}

// MarshalState implements Stateful: every context's state.
func (c *Contextual) MarshalState() ([]byte, error) {
	st := contextualState{Version: 1, Contexts: map[string]json.RawMessage{}}
	for k, p := range c.subs {
		sp, ok := p.(Stateful)
		if !ok {
			continue
		}
		b, err := sp.MarshalState()
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", k, err)
		}
		st.Contexts[k] = b
	}
	return json.Marshal(st)
}

// RestoreState implements Stateful. A state saved by the policy without
// contexts (before the step was made contextual) restores context "".
func (c *Contextual) RestoreState(b []byte) error {
	var st contextualState
	if err := json.Unmarshal(b, &st); err != nil || st.Contexts == nil {
		c.SetContext("")
		sp, ok := c.cur.(Stateful)
		if !ok {
			return nil
		}
		return sp.RestoreState(b)
	}
	for k, raw := range st.Contexts {
		c.SetContext(k)
		if sp, ok := c.cur.(Stateful); ok {
			if err := sp.RestoreState(raw); err != nil {
				return fmt.Errorf("context %q: %w", k, err)
			}
		}
	}
	c.SetContext("")
	return nil
}
