package stages_test

import (
	"testing"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// panicky is a policy that panics on a schedule: in Rank every third call,
// in Observe every fifth.
type panicky struct {
	inOrder
	ranks, observes int
}

func (p *panicky) Rank(dst []int) []int {
	p.ranks++
	if p.ranks%3 == 0 {
		panic("rank exploded")
	}
	return p.inOrder.Rank(dst)
}

func (p *panicky) Observe(int, bool, float64) {
	p.observes++
	if p.observes%5 == 0 {
		panic("observe exploded")
	}
}

func (p *panicky) Estimates(dst []bandit.Estimate) []bandit.Estimate {
	return p.inOrder.Estimates(dst)
}

// TestPanickingPolicyKeepsTheStageRunning: a policy that panics must not
// take the process down; the stage ranks in workflow order instead, and
// every batch is still delivered exactly once.
func TestPanickingPolicyKeepsTheStageRunning(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			pol := &panicky{inOrder: inOrder{k: 2}}
			e := startEnv(t, b, oneStep("flaky,good", 1), false, func(es *envSetup) {
				es.stageOpts = func(*stages.Step) []stages.Option {
					return []stages.Option{stages.WithPolicy(pol), stages.WithWorkers(1)}
				}
			})
			ids := e.produce(30, 4)
			got := map[string]int{}
			for _, r := range e.collect(len(ids), e.wf.Topics.Out) {
				got[string(r.Key)]++
			}
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("batch %s delivered %d times, want once", id, got[id])
				}
			}
			if err := e.pipe.Stop(); err != nil {
				t.Fatal(err)
			}
			if pol.ranks < 3 || pol.observes < 5 {
				t.Errorf("the policy was called %d/%d times: its panics were not exercised", pol.ranks, pol.observes)
			}
		})
	}
}
