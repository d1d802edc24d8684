package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/bandit"
)

func load(t *testing.T, name string) *Scenario {
	t.Helper()
	sc, err := Load(filepath.Join("..", "..", "bench", "scenarios", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func flexiflow(t *testing.T, sc *Scenario) Factory {
	f, err := factory("flexiflow", sc)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Properties of FlexiFlow's policy, checked on one seed each: they must hold
// for any seed, so they use generous bounds.

func TestConvergesOnStationary(t *testing.T) {
	sc := load(t, "stationary")
	r, o := Run(sc, flexiflow(t, sc), 3, false), Run(sc, nil, 3, false)
	if regret := r.CostPerDelivered()/o.CostPerDelivered() - 1; regret > 0.02 {
		t.Errorf("regret %.3f on a stationary workflow, want ≤ 0.02", regret)
	}
}

func TestFollowsAbruptSwap(t *testing.T) {
	sc := load(t, "abrupt-swap")
	r := Run(sc, flexiflow(t, sc), 5, false)
	if r.DetectionDelay > 300 {
		t.Errorf("followed the swap after %.0f batches, want ≤ 300", r.DetectionDelay)
	}
}

func TestCreditsDownstreamEffects(t *testing.T) {
	sc := load(t, "downstream")
	o := Run(sc, nil, 2, false).CostPerDelivered()
	ff := Run(sc, flexiflow(t, sc), 2, false).CostPerDelivered()/o - 1
	ucb, _ := factory("ucb1", sc)
	local := Run(sc, ucb, 2, false).CostPerDelivered()/o - 1
	if ff > 0.05 || local < 0.2 {
		t.Errorf("regret: flexiflow %.3f (want ≤ 0.05), ucb1 %.3f (want ≥ 0.2, the price of ignoring downstream effects)", ff, local)
	}
}

func TestSameSeedSameResult(t *testing.T) {
	sc := load(t, "recurring")
	a, b := Run(sc, flexiflow(t, sc), 9, true), Run(sc, flexiflow(t, sc), 9, true)
	if a.Cost != b.Cost || a.Delivered != b.Delivered {
		t.Errorf("same seed, different runs: %v/%d vs %v/%d", a.Cost, a.Delivered, b.Cost, b.Delivered)
	}
	c := Run(sc, flexiflow(t, sc), 10, false)
	if c.Cost == a.Cost {
		t.Error("another seed gave the identical cost: the seed is not used")
	}
}

// TestOracleIsCascadeOptimal checks the oracle against brute force on a
// one-step workflow: no order of the models has a lower expected cost.
func TestOracleIsCascadeOptimal(t *testing.T) {
	sc := &Scenario{Name: "x", Batches: 1, Steps: []StepSpec{{Name: "s", Models: []ModelSpec{
		{Name: "a", LatencyMs: Knots{{0, 5}}, Pass: Knots{{0, 0.5}}},
		{Name: "b", LatencyMs: Knots{{0, 12}}, Pass: Knots{{0, 0.95}}},
		{Name: "c", LatencyMs: Knots{{0, 3}}, Pass: Knots{{0, 0.2}}},
	}}}}
	o := newOracle(sc)
	best, cost, _ := o.plan(0, 0, 1)
	expected := func(order []int) float64 {
		reach, c := 1.0, 0.0
		for _, i := range order {
			m := sc.Steps[0].Models[i]
			c += reach * m.LatencyMs.At(0)
			reach *= 1 - m.Pass.At(0)
		}
		return c
	}
	for _, perm := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		if expected(perm) < cost-1e-9 {
			t.Errorf("order %v costs %.3f, less than the oracle's %v at %.3f", perm, expected(perm), best, cost)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	cases := map[string]string{
		"name: x\nbatches: 0\nsteps: []\n": "batches must be at least 1",
		"name: x\nbatches: 5\nsteps: [{name: s, models: [{name: m, latency_ms: [[0, 1]], pass: [[0, 1.5]]}]}]\n":                     "outside [0, 1]",
		"name: x\nbatches: 5\nsteps: [{name: s, models: [{name: m, latency_ms: [[5, 1], [2, 1]], pass: [[0, 1]]}]}]\n":               "must increase",
		"name: x\nbatches: 5\nsteps: [{name: s, models: [{name: m, latency_ms: [[0, 1]], pass: [[0, 1]]}], downstream: {z: 0.5}}]\n": "unknown model \"z\"",
	}
	for body, want := range cases {
		p := filepath.Join(t.TempDir(), "s.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}

func TestEveryCommittedScenarioLoads(t *testing.T) {
	files, _ := filepath.Glob("../../bench/scenarios/*.yaml")
	if len(files) < 8 {
		t.Fatalf("want at least 8 committed scenarios, found %d", len(files))
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
	if _, err := factory("nope", nil); err == nil {
		t.Error("unknown policy accepted")
	}
	var _ bandit.Policy = bandit.NewFlexiFlow(2, bandit.DefaultFlexiFlowConfig, 1)
}
