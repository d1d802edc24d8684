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
