package stages_test

import (
	"testing"

	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestStateSurvivesRestart trains a step's policy, restarts the stage, and
// checks that its first decision afterwards uses the learned estimates, not
// the prior.
func TestStateSurvivesRestart(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := startEnv(t, b, oneStep("bad,good", 1), false)
			const n = 30
			e.produce(n, 2)
			e.collect(n, e.wf.Topics.Out, e.wf.Steps[0].Topics.DLQ)
			before := len(e.traces(n)) // every batch had one or two attempts
			e.restart()
			ids := e.produce(1, 2)
			var first *struct {
				pulls, pass float64
			}
			for _, tr := range e.traces(before + 1) {
				if tr.BatchID == ids[0] && tr.Attempt == 1 {
					for _, est := range tr.Estimates {
						if est.Model == "good" {
							first = &struct{ pulls, pass float64 }{est.Pulls, est.PassProb}
						}
					}
				}
			}
			if first == nil {
				t.Fatal("no trace of the first decision after the restart")
			}
			// The prior is 0 pulls and pass probability 0.5.
			if first.pulls < 5 || first.pass < 0.8 {
				t.Errorf("first decision after restart saw good with %.1f pulls and p=%.2f; want the learned estimates (≥5 pulls, p≥0.8)", first.pulls, first.pass)
			}
		})
	}
}
