package bandit

import (
	"fmt"
	"slices"
)

// Policy ranks the models of one step and learns from their attempts.
type Policy interface {
	// Rank writes every model index, best first, into dst[:0] and returns it.
	Rank(dst []int) []int
	// Observe records one attempt of model i: whether its batch passed the
	// step's assertions, and what the attempt cost (milliseconds, or a price).
	Observe(i int, passed bool, cost float64)
	// Estimates writes the policy's current mean estimate of each model into
	// dst[:0] and returns it, indexed like the models.
	Estimates(dst []Estimate) []Estimate
}

// DownstreamObserver is a policy that also learns what its models' outputs
// do in later steps: after a batch model i served leaves the workflow, what
// it cost downstream and whether it was delivered (bandit.FlexiFlow).
type DownstreamObserver interface {
	ObserveDownstream(i int, cost float64, delivered bool)
}

// Estimate is a policy's mean view of one model.
type Estimate struct {
	PassProb float64 // estimated probability that the model's batch passes
	Cost     float64 // estimated cost of one attempt, overheads included
	Pulls    float64 // effective number of observations behind the estimate
}

// Score is the expected cost to get a passing answer from this model alone,
// Cost/PassProb: the quantity an optimal cascade sorts on.
func (e Estimate) Score() float64 {
	if e.PassProb <= 0 {
		return e.Cost * 1e9
	}
	return e.Cost / e.PassProb
}

// Params are a policy's tuning knobs, as given in a workflow file.
type Params map[string]float64

// New builds the policy called name ("" is flexiflow) for k models, with
// params checked against the policy's Spec. seed makes it deterministic.
func New(name string, k int, params Params, seed uint64) (Policy, error) {
	if k < 1 {
		return nil, fmt.Errorf("a step needs at least one model, got %d", k)
	}
	s, full, err := resolve(name, params)
	if err != nil {
		return nil, err
	}
	return s.build(k, full, seed), nil
}

// Leader follows a step's top-ranked model: the model its policy ranks
// first in most of its recent decisions. A sampling policy's ranking varies
// from decision to decision by design, so one decision says little; the
// leader changes only when another model has been ranked first in clearly
// more of the recent decisions (its share of them exceeds the leader's by
// the margin), so a switch means the step now tries another model first.
// Following the ranking rather than the mean estimates keeps the leader
// the model the step actually serves, even where two models' estimates are
// close enough that a threshold on them would hold the old one.
type Leader struct {
	current   int
	margin    float64
	share     []float64 // per model, its share of the recent decisions ranked first
	decisions int
}

// leaderMemory is the weight of one decision in the shares: they cover
// about the last 20 decisions. The first leader is elected leaderWarmup
// decisions after the policy first learned something.
const (
	leaderMemory = 0.05
	leaderWarmup = 20
)

// NewLeader starts with no leader, elects one after its first decisions
// and switches when a challenger's share of
// the recent first places exceeds the leader's by margin (0 < margin < 1).
func NewLeader(margin float64) *Leader { return &Leader{current: -1, margin: margin} }

// Current is the index of the leading model, or -1 before one is elected.
func (l *Leader) Current() int { return l.current }

// Update records the model ranked first at a decision, with the policy's
// estimates at it, and reports whether the leader changed, and from which
// model. Decisions made before the policy has observed anything (a step's
// first poll, ranked before its first commit) are exploration and do not
// count.
func (l *Leader) Update(first int, est []Estimate) (changed bool, from int) {
	if l.decisions == 0 && !slices.ContainsFunc(est, func(e Estimate) bool { return e.Pulls > 0 }) {
		return false, l.current
	}
	if len(l.share) != len(est) {
		l.share = make([]float64, len(est))
	}
	for i := range l.share {
		l.share[i] *= 1 - leaderMemory
	}
	if first >= 0 && first < len(l.share) {
		l.share[first] += leaderMemory
	}
	if l.decisions++; l.decisions < leaderWarmup {
		return false, l.current
	}
	best := 0
	for i := range l.share {
		if l.share[i] > l.share[best] {
			best = i
		}
	}
	if best == l.current || (l.current >= 0 && l.share[best] <= l.share[l.current]+l.margin) {
		return false, l.current
	}
	from = l.current
	l.current = best
	return from >= 0, from
}

// RankByScore orders indices by ascending score; ties keep index order.
func RankByScore(dst []int, score []float64) []int {
	dst = dst[:0]
	for i := range score {
		// Insertion sort: k is small, it is stable, and it allocates nothing.
		j := len(dst)
		dst = append(dst, i)
		for j > 0 && score[dst[j-1]] > score[i] {
			dst[j] = dst[j-1]
			j--
		}
		dst[j] = i
	}
	return dst
}
