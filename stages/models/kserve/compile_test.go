package kserve_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// TestCompileServedWorkflow builds the adapters a workflow file describes
// (no server needed: adapters connect on first call) and the bandit's cost
// of each slot: its configured price, or else the measured latency.
func TestCompileServedWorkflow(t *testing.T) {
	data, err := os.ReadFile("../../../examples/served-digits/workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wf, err := workflow.Parse("served-digits.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := demo.Compile(wf)
	if err != nil {
		t.Fatal(err)
	}
	slots := c.Steps[0].Models
	want := []struct {
		name     string
		protocol string
		price    float64
	}{{"logreg", "rest", 1}, {"knn", "grpc", 4}, {"mlp", "grpc", 8}}
	for i, w := range want {
		s := slots[i]
		m, ok := middleware.Innermost(s.Model).(*kserve.Model)
		if !ok || s.Name != w.name || m.Config().Protocol != w.protocol {
			t.Fatalf("slot %d: %s %T", i, s.Name, s.Model)
		}
		if !s.Priced || s.Cost(time.Second) != w.price {
			t.Errorf("slot %s: priced %v, cost %v, want price %v", s.Name, s.Priced, s.Cost(time.Second), w.price)
		}
	}
	if cfg := middleware.Innermost(slots[0].Model).(*kserve.Model).Config(); cfg.Version != "v1" {
		t.Errorf("logreg config %+v", cfg)
	}
	if m := wf.Steps[0].Models[0]; m.MaxConcurrency != 4 || *m.Retries != 2 || m.Breaker.Failures != 5 {
		t.Errorf("logreg wrappers: max_concurrency %d, retries %d, breaker failures %d", m.MaxConcurrency, *m.Retries, m.Breaker.Failures)
	}

	// Without price_ms the cost is the measured latency.
	wf, err = workflow.Parse("served-digits.yaml", []byte(strings.Replace(string(data), "price_ms: 1\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = demo.Compile(wf); err != nil {
		t.Fatal(err)
	}
	if s := c.Steps[0].Models[0]; s.Priced || s.Cost(2500*time.Microsecond) != 2.5 {
		t.Errorf("unpriced slot: priced %v, cost %v for 2.5ms", s.Priced, s.Cost(2500*time.Microsecond))
	}

	// A credential file that is missing is named, at the model's line.
	wf, err = workflow.Parse("served-digits.yaml", []byte(strings.Replace(string(data), "price_ms: 1\n", "price_ms: 1\n        auth: {ca_file: /nonexistent/ca.pem}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = demo.Compile(wf)
	if err == nil || !strings.Contains(err.Error(), `served-digits.yaml:12: step "classify" model "logreg": building a kserve-v2 model: served model "logreg": reading ca_file`) {
		t.Errorf("error %v", err)
	}
}
