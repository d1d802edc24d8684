package bandit

import (
	"math/rand/v2"
	"testing"
)

// TestDriftDetector: noisy reports of a steady downstream cost leave the
// other models' evidence alone; a lasting change in what the served
// model's output costs later steps cuts it, so they are tried again.
func TestDriftDetector(t *testing.T) {
	cfg := DefaultFlexiFlowConfig
	f := NewFlexiFlow(2, cfg, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	// Model 1 was judged long ago; model 0 serves from then on.
	for range 40 {
		f.ObserveDownstream(1, 30, true)
	}
	report := func(mean float64, n int) {
		for range n {
			// Exponential costs: a cascade's later steps cost little on
			// most batches and much on a few.
			f.ObserveDownstream(0, mean*rng.ExpFloat64(), rng.Float64() < 0.95)
		}
	}
	judged := f.down[1].n
	report(10, 500)
	g := cfg.DownstreamDiscount
	steady := f.down[1].n
	if want := judged * pow(g, 500); steady < 0.99*want {
		t.Fatalf("steady noisy reports cut the other model's evidence to %.4f, want it only discounted (%.4f)", steady, want)
	}
	served := f.down[0].n
	report(40, 60)
	if got, want := f.down[1].n, steady*pow(g, 60); got > 0.5*want {
		t.Errorf("after the served model's downstream cost quadrupled, the other's evidence is %.4f, want it cut well below its discounted %.4f", got, want)
	}
	// Without a restart the served model's figure would hold its old
	// reports, discounted, plus the 60 new ones. The detector may fire
	// early in the shift and count the later reports afresh, so only
	// the old evidence has to be gone.
	kept := served * pow(g, 60)
	for k := range 60 {
		kept += pow(g, k)
	}
	t.Logf("served model: %.1f reports before the shift, %.1f after (%.1f without a restart)", served, f.down[0].n, kept)
	if d := f.down[0]; d.n > 0.5*kept {
		t.Errorf("the served model's long-run figure holds %.1f reports after the change, want it restarted (without a restart: %.1f)", d.n, kept)
	}
}

func pow(x float64, n int) float64 {
	p := 1.0
	for range n {
		p *= x
	}
	return p
}

// TestPassDrift: a served model whose pass rate falls from 95% to 10%
// loses its rank within tens of attempts with the detector on, where its
// discount alone takes far longer; noisy attempts at a steady rate do not
// fire it, and its state survives a restart.
func TestPassDrift(t *testing.T) {
	attemptsToLose := func(passDrift float64) (steadyCuts int, lost int) {
		cfg := DefaultFlexiFlowConfig
		cfg.PassDrift = passDrift
		f := NewFlexiFlow(2, cfg, 1)
		rng := rand.New(rand.NewPCG(3, 4))
		for range 50 {
			f.Observe(1, rng.Float64() < 0.9, 4) // the reserve: 90%, dearer
		}
		before := f.arms[1].pass + f.arms[1].fail
		for range 400 {
			f.Observe(0, rng.Float64() < 0.95, 1)
		}
		if after := f.arms[1].pass + f.arms[1].fail; after < 0.99*before {
			steadyCuts++
		}
		for k := range 1000 {
			f.Observe(0, rng.Float64() < 0.1, 1)
			e := f.Estimates(nil)
			if e[0].Score() > e[1].Score() {
				return steadyCuts, k + 1
			}
		}
		return steadyCuts, 1000
	}
	cuts, on := attemptsToLose(DefaultFlexiFlowConfig.PassDrift)
	_, off := attemptsToLose(0)
	t.Logf("the failing model loses its rank after %d attempts with the detector, %d without", on, off)
	if cuts != 0 {
		t.Error("400 attempts at a steady 95% cut the reserve's evidence")
	}
	if on > 30 || on*2 > off {
		t.Errorf("with the detector the failing model loses its rank after %d attempts, without after %d; want within 30 and in at most half the attempts", on, off)
	}

	// The detector's moving average is part of the saved state.
	f := NewFlexiFlow(2, DefaultFlexiFlowConfig, 1)
	for k := range 30 {
		f.Observe(0, k%3 != 0, 1)
	}
	b, err := f.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	g := NewFlexiFlow(2, DefaultFlexiFlowConfig, 1)
	if err := g.RestoreState(b); err != nil {
		t.Fatal(err)
	}
	if g.local[0] != f.local[0] || g.local[0].n == 0 {
		t.Errorf("restored detector state %+v, saved %+v", g.local[0], f.local[0])
	}
}
