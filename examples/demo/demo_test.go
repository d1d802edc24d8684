package demo

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestDemo runs the demo end to end on each backend and checks the story it
// tells: every batch ends exactly once, each step's top-ranked model
// switches when the input drifts, and after each drift the step recovers
// (its first-try pass rate late in the phase beats the rate early on, or
// stays high).
func TestDemo(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			o := Options{Batches: 900, Name: streamtest.Unique("digits")}
			if b.Name != "kfake" {
				o.Brokers = b.Start(t).Brokers
			}
			r, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			var table strings.Builder
			r.WriteTable(&table)
			t.Log(table.String())

			if r.Produced != o.Batches || r.Lost != 0 || r.Duplicates != 0 || r.Delivered+r.DeadLettered != o.Batches {
				t.Errorf("bookkeeping: produced %d, delivered %d, dead-lettered %d, lost %d, duplicates %d",
					r.Produced, r.Delivered, r.DeadLettered, r.Lost, r.Duplicates)
			}
			for _, s := range r.Steps {
				// Every attempt after a batch's first at a step is a retry,
				// and starts after the failed attempt ended.
				if s.Retries != s.Attempts-s.BatchesIn || (s.Retries > 0 && (s.RetryGapMs <= 0 || s.RetryGapMs > s.RetryGapMaxMs)) {
					t.Errorf("step %s: %d attempts over %d batches but %d retries, gaps %.2f ms (max %.2f)",
						s.Name, s.Attempts, s.BatchesIn, s.Retries, s.RetryGapMs, s.RetryGapMaxMs)
				}
				if len(s.Switches) == 0 {
					t.Errorf("step %s never switched its top-ranked model", s.Name)
				}
				leaders := map[string]bool{}
				for _, p := range s.Phases {
					leaders[p.Leader] = true
				}
				if len(leaders) < 2 {
					t.Errorf("step %s ended every phase with the same leader %v; the drift should change the best model", s.Name, leaders)
				}
			}
			for i, p := range r.Phases {
				if p.DeliveredFraction < 0.9 {
					t.Errorf("phase %s delivered only %.0f%% of its batches", p.Name, 100*p.DeliveredFraction)
				}
				for _, s := range r.Steps {
					sp := s.Phases[i]
					if i > 0 && sp.FirstTryLate < sp.FirstTryEarly && sp.FirstTryLate < 0.8 {
						t.Errorf("step %s did not recover in phase %s: first-try pass rate %.0f%% early, %.0f%% late",
							s.Name, p.Name, 100*sp.FirstTryEarly, 100*sp.FirstTryLate)
					}
				}
			}
		})
	}
}

// TestWorkflowUsesCalibratedThresholds keeps the demo workflow's assertion
// thresholds equal to the ones the digits package calibrated.
func TestWorkflowUsesCalibratedThresholds(t *testing.T) {
	wf, err := Workflow()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		prefix string
		value  float64
	}{
		"denoise":  {"roughness(output.pixels) <= ", digits.RoughnessMax},
		"classify": {"output.confidence >= ", digits.ConfidenceMin},
	}
	for _, s := range wf.Steps {
		w, found := want[s.Name], false
		for _, a := range s.Assertions.Records {
			if v, ok := strings.CutPrefix(strings.TrimSpace(a.Expr), w.prefix); ok {
				f, err := strconv.ParseFloat(v, 64)
				found = err == nil && f == w.value
			}
		}
		if !found {
			t.Errorf("step %s: no assertion %q%v", s.Name, w.prefix, w.value)
		}
	}
}

// TestTrapFeedback runs the trap workflow on the embedded broker: denoise
// never dead-letters there, so every batch ends downstream and denoise's
// policy must hear back about each exactly once; the summary reports a
// cost per delivered batch per phase.
func TestTrapFeedback(t *testing.T) {
	o := Options{Batches: 300, Trap: true, Name: streamtest.Unique("trap")}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Lost != 0 || r.Duplicates != 0 || r.Delivered+r.DeadLettered != o.Batches {
		t.Fatalf("bookkeeping: %+v", r)
	}
	if len(r.Feedback) != 1 || r.Feedback[0].Step != "denoise" {
		t.Fatalf("feedback %+v, want reports to denoise alone (classify is the last step)", r.Feedback)
	}
	if got := r.Feedback[0].Reports; got != int64(o.Batches) {
		t.Errorf("denoise heard back about %d batches, want each of the %d once", got, o.Batches)
	}
	if r.CostMsPerDelivered <= 0 {
		t.Errorf("cost per delivered batch %v", r.CostMsPerDelivered)
	}
	for _, p := range r.Phases {
		if p.Delivered > 0 && p.CostMsPerDelivered <= 0 {
			t.Errorf("phase %s: cost per delivered %v", p.Name, p.CostMsPerDelivered)
		}
	}
}
