package sim

import "fmt"

// A Walk is what a running workflow did with one item: per step, the
// models it tried, in the order it tried them (the table's model indices).
// A step the item never reached is empty.
type Walk [][]int

// Price costs a running workflow's decisions with the table, so that they
// compare with the oracle and the baselines on the same footing: each
// attempt costs its row's cost_ms, the model that passed (by the table) is
// the next step's upstream, and an item is delivered when a model passes
// its last step. walks[i] is item i's walk; an item with no walk is left
// out. Disagreements counts attempts whose pass in the table differs from
// what the run saw (given by seen, true for passed; nil skips the check):
// with deterministic models it is 0, and anything else says the table was
// made from other batches or other models.
func Price(t *Table, walks []Walk, seen [][][]bool) (res Result, disagreements int, err error) {
	if len(walks) > t.Items {
		return res, 0, fmt.Errorf("pricing with table %s: %d items walked, the table has %d", t.Name, len(walks), t.Items)
	}
	for i, w := range walks {
		if len(w) == 0 {
			continue
		}
		if len(w) > len(t.Steps) {
			return res, 0, fmt.Errorf("pricing with table %s: item %d walked %d steps, the table has %d", t.Name, i, len(w), len(t.Steps))
		}
		res.Batches++
		cost, up, delivered := 0.0, -1, false
		for s, tried := range w {
			passed := -1
			for k, m := range tried {
				if m < 0 || m >= len(t.Steps[s].Models) {
					return res, 0, fmt.Errorf("pricing with table %s: item %d step %s: model %d of %d", t.Name, i, t.Steps[s].Name, m, len(t.Steps[s].Models))
				}
				o := t.At(i, s, up, m)
				cost += o.CostMs
				if seen != nil && o.Passed != seen[i][s][k] {
					disagreements++
				}
				if o.Passed {
					passed = m
					break
				}
			}
			if passed < 0 {
				break
			}
			up = passed
			delivered = s == len(t.Steps)-1
		}
		res.Cost += cost
		if delivered {
			res.Delivered++
		}
	}
	return res, disagreements, nil
}

// Head is the table's first n items (all of them if it has fewer).
func (t *Table) Head(n int) *Table {
	h := *t
	if n < h.Items {
		h.Items, h.out = n, h.out[:n]
	}
	return &h
}

// Slice is the table's items from up to, not including, to, numbered
// from 0: one phase of a stream replayed on its own (bench replay
// --items), whose oracle bounds what any policy can do there.
func (t *Table) Slice(from, to int) (*Table, error) {
	if from < 0 || to > t.Items || from >= to {
		return nil, fmt.Errorf("table %s has items 0-%d, not %d-%d", t.Name, t.Items-1, from, to-1)
	}
	h := *t
	h.Items, h.out = to-from, t.out[from:to]
	return &h, nil
}

// WithOverhead is the table with overheadMs[s] added to the cost of every
// attempt at step s: the objective of a policy told that a failed attempt
// wastes that much beyond the model (its overhead_ms), such as the trip
// through a retry topic. A step past the slice's end adds nothing.
func (t *Table) WithOverhead(overheadMs []float64) *Table {
	h := *t
	h.out = make([][][][]Outcome, len(t.out))
	for i, steps := range t.out {
		h.out[i] = make([][][]Outcome, len(steps))
		for s, ups := range steps {
			add := 0.0
			if s < len(overheadMs) {
				add = overheadMs[s]
			}
			h.out[i][s] = make([][]Outcome, len(ups))
			for u, ms := range ups {
				h.out[i][s][u] = make([]Outcome, len(ms))
				for m, o := range ms {
					o.CostMs += add
					h.out[i][s][u][m] = o
				}
			}
		}
	}
	return &h
}
