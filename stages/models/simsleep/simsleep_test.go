package simsleep_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/modeltest"
	"github.com/flexiflow/flexiflow/stages/models/simsleep"
)

func build(t *testing.T, cfg string) (models.Model, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &n); err != nil {
		t.Fatal(err)
	}
	k := simsleep.Kind()
	c, err := k.Decode("slow", n.Content[0])
	if err != nil {
		return nil, err
	}
	return c.New(nil)
}

func items(n int) []models.Record {
	recs := make([]models.Record, n)
	for i := range recs {
		recs[i] = models.Record{"id": fmt.Sprintf("i%d", i), "x": float64(i)}
	}
	return recs
}

func TestConformance(t *testing.T) {
	modeltest.Run(t, modeltest.Case{
		New: func(t *testing.T) models.Model {
			m, err := build(t, "latency_ms: 2\njitter: 0.5")
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
		Records:       items,
		Answers:       func(in, out models.Record) bool { return in["id"] == out["id"] && out["ok"] == true },
		Deterministic: true,
	})
}

// TestWaitsAndPasses checks the wait, the copy and the share of passing
// batches.
func TestWaitsAndPasses(t *testing.T) {
	m, err := build(t, "latency_ms: 20\npass: 0.3")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := m.Predict(context.Background(), items(3))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("returned after %s, want at least 20ms", d)
	}
	if out[2]["x"] != 2.0 || out[2]["id"] != "i2" || out[0]["ok"] != out[2]["ok"] {
		t.Errorf("want a copy of the input with one ok for the batch, got %v", out)
	}
	fast, err := build(t, "latency_ms: 0\npass: 0.3")
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	const n = 4000
	for range n {
		out, err := fast.Predict(context.Background(), items(1))
		if err != nil {
			t.Fatal(err)
		}
		if out[0]["ok"] == true {
			passed++
		}
	}
	// 0.3 ± 5 standard deviations of a binomial share over n draws.
	if share := float64(passed) / n; share < 0.26 || share > 0.34 {
		t.Errorf("%.3f of batches passed, want about 0.3", share)
	}
}

func TestCancelStopsTheWait(t *testing.T) {
	m, err := build(t, "latency_ms: 10000")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Predict(ctx, items(1)); err == nil {
		t.Fatal("a cancelled call returned no error")
	}
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		"latency_ms: -1":            "latency_ms must not be negative",
		"latency_ms: 5\njitter: 2":  "jitter is a fraction",
		"latency_ms: 5\npass: 1.5":  "pass is a probability",
		"jitter: 0.1":               "latency_ms",
		"latency_ms: 5\nspeed: 3.0": "speed",
	} {
		_, err := build(t, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", cfg, err, want)
		}
	}
}
