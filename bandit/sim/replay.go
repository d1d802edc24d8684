package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flexiflow/flexiflow/bandit"
)

// A Table is recorded outcomes of real models on real data: for each item
// of a stream, each step, each model that could have served the previous
// step (upstream) and each model of the step, whether the model's output
// passed the step's assertions and what the attempt cost. Replay walks a
// policy through it as a workflow would: the benchmark routers are judged
// on (RouterBench, RouteLLM), with FlexiFlow's steps and cascades.
type Table struct {
	Name  string
	Items int
	Steps []TableStep
	// out[item][step][upstream+1][model]; upstream -1 at the first step.
	out [][][][]Outcome
}

// TableStep is one step of a table: its models in order of first
// appearance.
type TableStep struct {
	Name   string
	Models []string
}

// Outcome is one row of a table.
type Outcome struct {
	Passed bool
	CostMs float64
}

// TableHeader is the header a table's CSV must start with.
const TableHeader = "item,step,upstream,model,passed,cost_ms"

// At is the outcome of model m at step s on item i after upstream u (-1
// at the first step).
func (t *Table) At(i, s, u, m int) Outcome { return t.out[i][s][u+1][m] }

// ReadTable parses a table: the CSV header TableHeader, then one row per
// (item, step, upstream, model). Items are integers from 0 in stream
// order; steps come in the order they first appear; upstream is empty at
// the first step and names a model of the previous step otherwise, and
// every (upstream, model) pair has a row. Errors name the file and line.
func ReadTable(r io.Reader, name string) (*Table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 6
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: reading the header: %w", name, err)
	}
	if got := strings.Join(head, ","); got != TableHeader {
		return nil, fmt.Errorf("%s:1: header %q, want %q", name, got, TableHeader)
	}
	type row struct {
		line, item, step, up, model int
		o                           Outcome
	}
	t := &Table{Name: name}
	stepIdx := map[string]int{}
	modelIdx := []map[string]int{}
	var rows []row
	lastItem := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
		}
		item, err := strconv.Atoi(rec[0])
		if err != nil || item < 0 {
			return nil, bad("item %q: want an integer from 0", rec[0])
		}
		if item < lastItem {
			return nil, bad("item %d after item %d: rows must come in stream order", item, lastItem)
		}
		if item > lastItem+1 {
			return nil, bad("item %d after item %d: items %d..%d have no rows", item, lastItem, lastItem+1, item-1)
		}
		lastItem = item
		s, ok := stepIdx[rec[1]]
		if !ok {
			if item != 0 {
				return nil, bad("step %q first appears at item %d: every step must have rows for item 0", rec[1], item)
			}
			s = len(t.Steps)
			stepIdx[rec[1]] = s
			t.Steps = append(t.Steps, TableStep{Name: rec[1]})
			modelIdx = append(modelIdx, map[string]int{})
		}
		m, ok := modelIdx[s][rec[3]]
		if !ok {
			if item != 0 {
				return nil, bad("model %q of step %s first appears at item %d: every model must have rows for item 0", rec[3], rec[1], item)
			}
			m = len(t.Steps[s].Models)
			modelIdx[s][rec[3]] = m
			t.Steps[s].Models = append(t.Steps[s].Models, rec[3])
		}
		up := -1
		if s == 0 && rec[2] != "" {
			return nil, bad("upstream %q at the first step (%s): leave it empty", rec[2], rec[1])
		}
		if s > 0 {
			u, ok := modelIdx[s-1][rec[2]]
			if !ok {
				return nil, bad("upstream %q is not a model of step %s (the step before %s); have %s", rec[2], t.Steps[s-1].Name, rec[1], strings.Join(t.Steps[s-1].Models, ", "))
			}
			up = u
		}
		var passed bool
		switch strings.ToLower(rec[4]) {
		case "true", "1":
			passed = true
		case "false", "0":
		default:
			return nil, bad("passed %q: want true or false", rec[4])
		}
		cost, err := strconv.ParseFloat(rec[5], 64)
		if err != nil || cost < 0 || math.IsNaN(cost) || math.IsInf(cost, 0) {
			return nil, bad("cost_ms %q: want a number from 0", rec[5])
		}
		rows = append(rows, row{line, item, s, up, m, Outcome{passed, cost}})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows after the header", name)
	}
	t.Items = lastItem + 1
	seen := make([][][][]int, t.Items) // the line of each cell, 0 if none
	t.out = make([][][][]Outcome, t.Items)
	for i := range t.out {
		t.out[i] = make([][][]Outcome, len(t.Steps))
		seen[i] = make([][][]int, len(t.Steps))
		for s, st := range t.Steps {
			ups := 1
			if s > 0 {
				ups = len(t.Steps[s-1].Models)
			}
			t.out[i][s] = make([][]Outcome, ups+1)
			seen[i][s] = make([][]int, ups+1)
			for u := range t.out[i][s] {
				t.out[i][s][u] = make([]Outcome, len(st.Models))
				seen[i][s][u] = make([]int, len(st.Models))
			}
		}
	}
	for _, r := range rows {
		if prev := seen[r.item][r.step][r.up+1][r.model]; prev != 0 {
			return nil, fmt.Errorf("%s:%d: a second row for item %d, step %s, upstream %q, model %s (the first is line %d)", name, r.line, r.item, t.Steps[r.step].Name, t.upName(r.step, r.up), t.Steps[r.step].Models[r.model], prev)
		}
		seen[r.item][r.step][r.up+1][r.model] = r.line
		t.out[r.item][r.step][r.up+1][r.model] = r.o
	}
	for i := range seen {
		for s := range seen[i] {
			for u := range seen[i][s] {
				if s > 0 && u == 0 {
					continue // no "no upstream" after the first step
				}
				if s == 0 && u > 0 {
					continue
				}
				for m, line := range seen[i][s][u] {
					if line == 0 {
						return nil, fmt.Errorf("%s: item %d, step %s: no row for upstream %q and model %s; a table needs every (upstream, model) pair of every item", name, i, t.Steps[s].Name, t.upName(s, u-1), t.Steps[s].Models[m])
					}
				}
			}
		}
	}
	return t, nil
}

func (t *Table) upName(s, u int) string {
	if s == 0 || u < 0 {
		return ""
	}
	return t.Steps[s-1].Models[u]
}

// ReplayPolicies lists the policies Replay evaluates: bench bandit's, and
// thompson (the same sampling as flexiflow, no downstream credit).
var ReplayPolicies = []string{"flexiflow", "thompson", "static-best", "random", "epsilon-greedy", "ucb1", "sw-ucb", "cascade-ucb"}

// Names of the two references Replay computes from the table's truth.
const (
	Clairvoyant = "clairvoyant"
)

// ReplayOptions configures ReplayBench.
type ReplayOptions struct {
	Policies     []string // default ReplayPolicies
	Seeds        int      // orderings of ties and sampling; default 5
	OracleWindow int      // items around the current one the oracle learns from; default 200
	// FeedbackLag delays each downstream report by this many items, as a
	// running workflow's reports arrive after the batches behind them
	// have been ranked (0: at once).
	FeedbackLag int
}

// ReplayBench evaluates every policy on the table, and the oracle and the
// clairvoyant path for reference; regret is against the oracle.
func ReplayBench(t *Table, o ReplayOptions) (*Report, error) {
	if len(o.Policies) == 0 {
		o.Policies = ReplayPolicies
	}
	if o.Seeds == 0 {
		o.Seeds = 5
	}
	if o.Seeds < 1 {
		return nil, fmt.Errorf("seeds must be at least 1, got %d", o.Seeds)
	}
	if o.OracleWindow == 0 {
		o.OracleWindow = 200
	}
	if o.OracleWindow < 1 {
		return nil, fmt.Errorf("oracle window must be at least 1 item, got %d", o.OracleWindow)
	}
	rep := &Report{Scenario: t.Name, Seeds: o.Seeds}
	oracle := replayOracle(t, o.OracleWindow)
	for _, name := range o.Policies {
		if name == Oracle || name == Clairvoyant {
			continue
		}
		f, err := replayFactory(name, t)
		if err != nil {
			return nil, err
		}
		var cpd []float64
		var pr PolicyReport
		for seed := uint64(1); seed <= uint64(o.Seeds); seed++ {
			r := ReplayLagged(t, f, seed, o.FeedbackLag)
			cpd = append(cpd, r.CostPerDelivered())
			pr.DeliveryRate += float64(r.Delivered) / float64(r.Batches) / float64(o.Seeds)
			pr.DecisionNs += r.DecisionNs / float64(o.Seeds)
		}
		pr.Name = name
		pr.CostPerDelivered, pr.CostPerDeliveredCI95 = meanCI(cpd)
		rep.Policies = append(rep.Policies, pr)
	}
	clair := replayClairvoyant(t)
	for _, r := range []struct {
		name string
		res  Result
	}{{Oracle, oracle}, {Clairvoyant, clair}} {
		rep.Policies = append(rep.Policies, PolicyReport{Name: r.name, CostPerDelivered: r.res.CostPerDelivered(), DeliveryRate: float64(r.res.Delivered) / float64(r.res.Batches)})
	}
	base := oracle.CostPerDelivered()
	for i := range rep.Policies {
		rep.Policies[i].Regret = rep.Policies[i].CostPerDelivered/base - 1
	}
	return rep, nil
}

func replayFactory(name string, t *Table) (Factory, error) {
	mk := func(params bandit.Params) Factory {
		return func(_, k int, seed uint64) bandit.Policy {
			p, err := bandit.New(name, k, params, seed)
			if err != nil {
				panic(err) // parameters are fixed here; a failure is a bug
			}
			return p
		}
	}
	switch name {
	case "flexiflow", "thompson":
		return mk(bandit.Params{"overhead_ms": 0}), nil // the table's cost is the whole cost
	case "static-best":
		return mk(bandit.Params{"warmup": math.Max(1, math.Floor(float64(t.Items)/20))}), nil
	case "random", "epsilon-greedy", "ucb1", "sw-ucb", "cascade-ucb":
		return mk(nil), nil
	}
	return nil, fmt.Errorf("unknown policy %q; known: %s", name, strings.Join(ReplayPolicies, ", "))
}

// Replay walks one policy per step through the table for one seed. Per
// item and step the policy ranks the step's models; the cascade tries them
// in that order until one passes, each attempt costing its row's cost_ms
// and observed by the policy; the model that passed is the next step's
// upstream. An item no model passes is dead-lettered. When the item ends,
// each step's policy that learns downstream (flexiflow) hears what the
// item cost after that step and whether it was delivered. The seed also
// shuffles the order the policy sees the models in, so ties break
// differently per seed.
func Replay(t *Table, f Factory, seed uint64) Result { return ReplayLagged(t, f, seed, 0) }

// ReplayLagged is Replay with each item's downstream reports applied lag
// items later.
func ReplayLagged(t *Table, f Factory, seed uint64, lag int) Result {
	steps := len(t.Steps)
	pols := make([]bandit.Policy, steps)
	perm := make([][]int, steps) // policy's index -> table's model
	for s, st := range t.Steps {
		pols[s] = f(s, len(st.Models), seed*7919+uint64(s))
		perm[s] = shuffled(len(st.Models), seed*31+uint64(s))
	}
	res := Result{Batches: t.Items}
	rank := make([]int, 0, 16)
	served := make([]int, steps)
	costAt := make([]float64, steps)
	var rankNs float64
	var ranks int
	type report struct {
		at, step, model int
		cost            float64
		delivered       bool
	}
	var pending []report
	for i := 0; i < t.Items; i++ {
		for len(pending) > 0 && pending[0].at <= i {
			r := pending[0]
			pending = pending[1:]
			if d, ok := pols[r.step].(DownstreamObserver); ok {
				d.ObserveDownstream(r.model, r.cost, r.delivered)
			}
		}
		cost, delivered, up := 0.0, true, -1
		for s := range served {
			served[s] = -1
		}
		for s := 0; s < steps; s++ {
			start := time.Now()
			rank = pols[s].Rank(rank)
			rankNs += float64(time.Since(start).Nanoseconds())
			ranks++
			passedAt := -1
			for _, j := range rank {
				o := t.At(i, s, up, perm[s][j])
				cost += o.CostMs
				pols[s].Observe(j, o.Passed, o.CostMs)
				if o.Passed {
					passedAt = j
					break
				}
			}
			if passedAt < 0 {
				delivered = false
				break
			}
			served[s], costAt[s] = passedAt, cost
			up = perm[s][passedAt]
		}
		for s := 0; s < steps && served[s] >= 0; s++ {
			pending = append(pending, report{at: i + 1 + lag, step: s, model: served[s], cost: cost - costAt[s], delivered: delivered})
		}
		res.Cost += cost
		if delivered {
			res.Delivered++
		}
	}
	if ranks > 0 {
		res.DecisionNs = rankNs / float64(ranks)
	}
	return res
}

// shuffled is a permutation of 0..n-1 drawn from seed.
func shuffled(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	x := seed
	for i := n - 1; i > 0; i-- {
		j := int(splitmix(&x) % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// replayOracle orders each step, at each item, by the expected cost to
// deliver that the true outcomes of the items in a window of w around it
// give: a model's mean cost, plus if it passes the mean cost of the steps
// after it (each ordered the same way), over the fraction of items it
// passes and that are then delivered; the same index the simulator's
// oracle uses with true probabilities. It walks each item with those
// orders. Orders are recomputed every max(1, w/20) items.
func replayOracle(t *Table, w int) Result {
	res := Result{Batches: t.Items}
	every := max(1, w/20)
	var orders [][][]int // [step][upstream+1] -> order
	for i := 0; i < t.Items; i++ {
		if i%every == 0 {
			lo, hi := max(0, i-w/2), min(t.Items, i-w/2+w)
			if hi-lo < w {
				lo = max(0, hi-w)
			}
			orders = windowOrders(t, lo, hi)
		}
		cost, delivered, up := 0.0, true, -1
		for s := range t.Steps {
			passed := -1
			for _, m := range orders[s][up+1] {
				o := t.At(i, s, up, m)
				cost += o.CostMs
				if o.Passed {
					passed = m
					break
				}
			}
			if passed < 0 {
				delivered = false
				break
			}
			up = passed
		}
		res.Cost += cost
		if delivered {
			res.Delivered++
		}
	}
	return res
}

// windowOrders computes the oracle's order of every step for every
// upstream from items lo..hi-1, last step first.
func windowOrders(t *Table, lo, hi int) [][][]int {
	steps := len(t.Steps)
	orders := make([][][]int, steps)
	n := hi - lo
	// after[s][u+1][k]: the cost and delivery of window item k from step s
	// on, with upstream u, following the orders.
	type fate struct {
		cost      float64
		delivered bool
	}
	next := [][]fate(nil)
	for s := steps - 1; s >= 0; s-- {
		ups := 1
		if s > 0 {
			ups = len(t.Steps[s-1].Models) + 1
		}
		orders[s] = make([][]int, ups)
		cur := make([][]fate, ups)
		k := len(t.Steps[s].Models)
		for u := 0; u < ups; u++ {
			if s > 0 && u == 0 {
				continue
			}
			score := make([]float64, k)
			for m := 0; m < k; m++ {
				var c, p, v, q float64
				for j := 0; j < n; j++ {
					o := t.At(lo+j, s, u-1, m)
					c += o.CostMs
					if !o.Passed {
						continue
					}
					p++
					if next == nil {
						q++
						continue
					}
					f := next[m+1][j]
					v += f.cost
					if f.delivered {
						q++
					}
				}
				if p > 0 {
					v /= p
				}
				c /= float64(n)
				qr := 0.0
				if p > 0 {
					qr = q / p
				}
				p /= float64(n)
				if p <= 0 || qr <= 0 {
					score[m] = 1e18 + c
				} else {
					score[m] = (c + p*v) / (p * qr)
				}
			}
			ord := bandit.RankByScore(make([]int, 0, k), score)
			orders[s][u] = ord
			fs := make([]fate, n)
			for j := 0; j < n; j++ {
				var f fate
				for _, m := range ord {
					o := t.At(lo+j, s, u-1, m)
					f.cost += o.CostMs
					if o.Passed {
						if next == nil {
							f.delivered = true
						} else {
							g := next[m+1][j]
							f.cost += g.cost
							f.delivered = g.delivered
						}
						break
					}
				}
				fs[j] = f
			}
			cur[u] = fs
		}
		next = cur
	}
	return orders
}

// replayClairvoyant serves each item by its cheapest delivering path,
// trying only the models on it; an item no path delivers costs nothing
// and is not delivered.
func replayClairvoyant(t *Table) Result {
	res := Result{Batches: t.Items}
	steps := len(t.Steps)
	for i := 0; i < t.Items; i++ {
		// best[u+1]: cheapest cost from step s on with upstream u.
		var best []float64
		for s := steps - 1; s >= 0; s-- {
			ups := 1
			if s > 0 {
				ups = len(t.Steps[s-1].Models) + 1
			}
			cur := make([]float64, ups)
			for u := range cur {
				cur[u] = math.Inf(1)
				if s > 0 && u == 0 {
					continue
				}
				for m := range t.Steps[s].Models {
					o := t.At(i, s, u-1, m)
					if !o.Passed {
						continue
					}
					c := o.CostMs
					if best != nil {
						c += best[m+1]
					}
					cur[u] = math.Min(cur[u], c)
				}
			}
			best = cur
		}
		if c := best[0]; !math.IsInf(c, 1) {
			res.Cost += c
			res.Delivered++
		}
	}
	return res
}
