// Package outcomes records what every model of a workflow does on a
// stream, offline: for each batch (an item), each step, each model that
// could have served the step before (the upstream) and each model of the
// step, whether its output passes the step's assertions and what the
// attempt costs. The result is the table flexiflow bench replay walks
// policies through (bandit/sim.ReadTable).
//
// Batches of records enter; CSV rows (item,step,upstream,model,passed,
// cost_ms) leave. A step after the first reads its upstream model's output
// on its own input; from the third step on, the steps before the upstream
// are taken as served by their first model (in workflow order) that passed,
// since a table keys outcomes by the immediate upstream only.
package outcomes

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/flexiflow/flexiflow/bandit/sim"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/models"
)

// Options tunes Write.
type Options struct {
	// Repeat runs each attempt this many times and records the median
	// cost (outputs are taken from the first), so one slow moment of the
	// machine does not become a model's cost (default 1).
	Repeat int
	// Progress, when set, is called after each item.
	Progress func(done int)
}

// Write tries every model of every step on n batches (batch(i) gives item
// i's records) and writes the table to w. Every model is first called once
// on item 0, untimed, so models that train or connect on first use do not
// charge that to the first item.
func Write(ctx context.Context, steps []*stages.Step, n int, batch func(i int) ([]models.Record, error), w io.Writer, o Options) error {
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	if err := warm(ctx, steps, batch); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(strings.Split(sim.TableHeader, ",")); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		in, err := batch(i)
		if err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		// inputs[u]: the step's input after upstream model u (u = -1 at the
		// first step); path: the upstream whose outputs feed the next step.
		inputs, path := map[int][]models.Record{-1: in}, -1
		for s, st := range steps {
			next, nextPath := map[int][]models.Record{}, -1
			for _, u := range upstreams(s, steps) {
				up := ""
				if u >= 0 {
					up = steps[s-1].Models[u].Name
				}
				input, ok := inputs[u]
				if !ok {
					// The upstream model failed outright: it never passes the
					// batch on, so these rows are never walked, but a table
					// has every (upstream, model) pair.
					for _, slot := range st.Models {
						if err := cw.Write([]string{strconv.Itoa(i), st.Spec.Name, up, slot.Name, "false", "0"}); err != nil {
							return err
						}
					}
					continue
				}
				for m, slot := range st.Models {
					a, err := try(ctx, st, m, input, o.Repeat)
					if err != nil {
						return err
					}
					if err := cw.Write([]string{strconv.Itoa(i), st.Spec.Name, up, slot.Name, strconv.FormatBool(a.Passed), strconv.FormatFloat(a.Cost, 'f', 3, 64)}); err != nil {
						return err
					}
					if u == path && a.Out != nil {
						next[m] = a.Out
						if a.Passed && nextPath < 0 {
							nextPath = m // the first model, in workflow order, that passes
						}
					}
				}
			}
			if nextPath < 0 {
				for m := range next {
					if nextPath < 0 || m < nextPath {
						nextPath = m
					}
				}
			}
			inputs, path = next, nextPath
			if len(inputs) == 0 && s+1 < len(steps) {
				return fmt.Errorf("item %d: no model of step %s answered at all, so step %s has no input to record", i, st.Spec.Name, steps[s+1].Spec.Name)
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(i + 1)
		}
	}
	cw.Flush()
	return cw.Error()
}

func upstreams(s int, steps []*stages.Step) []int {
	if s == 0 {
		return []int{-1}
	}
	out := make([]int, len(steps[s-1].Models))
	for i := range out {
		out[i] = i
	}
	return out
}

// try runs one attempt repeat times: the first run's output and verdict,
// the median cost.
func try(ctx context.Context, st *stages.Step, m int, in []models.Record, repeat int) (stages.Attempt, error) {
	first, err := st.Try(ctx, m, in)
	if err != nil || repeat == 1 {
		return first, err
	}
	costs := []float64{first.Cost}
	for r := 1; r < repeat; r++ {
		a, err := st.Try(ctx, m, in)
		if err != nil {
			return first, err
		}
		costs = append(costs, a.Cost)
	}
	sort.Float64s(costs)
	first.Cost = costs[len(costs)/2]
	return first, nil
}

// warm calls every model once on item 0 along the first passing path.
func warm(ctx context.Context, steps []*stages.Step, batch func(i int) ([]models.Record, error)) error {
	in, err := batch(0)
	if err != nil {
		return fmt.Errorf("item 0: %w", err)
	}
	for _, st := range steps {
		var next []models.Record
		for m := range st.Models {
			a, err := st.Try(ctx, m, in)
			if err != nil {
				return err
			}
			if next == nil && a.Out != nil {
				next = a.Out
			}
		}
		if next == nil {
			return nil
		}
		in = next
	}
	return nil
}
