package sim

import (
	"errors"
	"fmt"
	"math"
	"os"

	"gopkg.in/yaml.v3"
)

// Scenario is a simulated workflow.
type Scenario struct {
	Name    string     `yaml:"name" json:"name"`
	Batches int        `yaml:"batches" json:"batches"`
	Steps   []StepSpec `yaml:"steps" json:"steps"`
}

// StepSpec is one step of a scenario.
type StepSpec struct {
	Name       string             `yaml:"name" json:"name"`
	Models     []ModelSpec        `yaml:"models" json:"models"`
	Downstream map[string]float64 `yaml:"downstream" json:"downstream"`
}

// ModelSpec is one model's true behaviour over time.
type ModelSpec struct {
	Name         string   `yaml:"name" json:"name"`
	LatencyMs    Knots    `yaml:"latency_ms" json:"latency_ms"`
	LatencySigma *float64 `yaml:"latency_sigma" json:"latency_sigma"`
	Pass         Knots    `yaml:"pass" json:"pass"`
}

// Knots are [batch index, value] points; values are linear between knots
// and flat beyond the first and last.
type Knots [][2]float64

// At returns the value at batch t.
func (k Knots) At(t float64) float64 {
	if t <= k[0][0] {
		return k[0][1]
	}
	for i := 1; i < len(k); i++ {
		if t <= k[i][0] {
			a, b := k[i-1], k[i]
			return a[1] + (b[1]-a[1])*(t-a[0])/(b[0]-a[0])
		}
	}
	return k[len(k)-1][1]
}

// Sigma is the model's lognormal latency spread.
func (m ModelSpec) Sigma() float64 {
	if m.LatencySigma == nil {
		return 0.25
	}
	return *m.LatencySigma
}

// Load reads a scenario file (YAML or JSON) and checks it.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	var s Scenario
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a valid scenario: %w", path, err)
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// Check reports what is wrong with a scenario, if anything.
func (s *Scenario) Check() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Name == "" {
		bad("name is missing")
	}
	if s.Batches < 1 {
		bad("batches must be at least 1, got %d", s.Batches)
	}
	if len(s.Steps) == 0 {
		bad("steps: at least one step is needed")
	}
	for _, st := range s.Steps {
		if len(st.Models) == 0 {
			bad("step %q has no models", st.Name)
		}
		names := map[string]bool{}
		for _, m := range st.Models {
			names[m.Name] = true
			if err := checkKnots(m.LatencyMs, 0, math.Inf(1)); err != nil {
				bad("step %q model %q latency_ms: %v", st.Name, m.Name, err)
			}
			if err := checkKnots(m.Pass, 0, 1); err != nil {
				bad("step %q model %q pass: %v", st.Name, m.Name, err)
			}
			if m.Sigma() < 0 {
				bad("step %q model %q latency_sigma must be >= 0", st.Name, m.Name)
			}
		}
		for m, f := range st.Downstream {
			if !names[m] {
				bad("step %q downstream names unknown model %q", st.Name, m)
			}
			if f < 0 {
				bad("step %q downstream factor for %q must be >= 0", st.Name, m)
			}
		}
	}
	return errors.Join(errs...)
}

func checkKnots(k Knots, lo, hi float64) error {
	if len(k) == 0 {
		return errors.New("needs at least one [batch, value] knot")
	}
	for i, p := range k {
		if p[1] < lo || p[1] > hi {
			return fmt.Errorf("knot %d value %g is outside [%g, %g]", i, p[1], lo, hi)
		}
		if i > 0 && p[0] <= k[i-1][0] {
			return fmt.Errorf("knot %d: batch indices must increase", i)
		}
	}
	return nil
}
