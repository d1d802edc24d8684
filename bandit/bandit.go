package bandit

import "fmt"

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

// Leader follows a step's top-ranked model by mean estimates. The ranking a
// sampling policy returns varies from decision to decision by design; the
// leader changes only when another model's expected cost to pass is lower
// than the current leader's by a margin, so a switch means something.
type Leader struct {
	current int
	margin  float64
}

// NewLeader starts with model 0 and switches when a challenger's score is
// below (1-margin) times the leader's.
func NewLeader(margin float64) *Leader { return &Leader{current: -1, margin: margin} }

// Current is the index of the leading model, or -1 before the first Update.
func (l *Leader) Current() int { return l.current }

// Update looks at fresh estimates and reports whether the leader changed,
// and from which model.
func (l *Leader) Update(est []Estimate) (changed bool, from int) {
	best := -1
	for i, e := range est {
		if e.Pulls < 1 {
			continue // never observed: no basis to lead
		}
		if best < 0 || e.Score() < est[best].Score() {
			best = i
		}
	}
	if best < 0 || best == l.current {
		return false, l.current
	}
	if l.current >= 0 && est[best].Score() > (1-l.margin)*est[l.current].Score() {
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
