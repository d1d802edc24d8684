package kserve_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// classifier is the mapping every digit classifier here uses: pixels in,
// the predicted class and its probability out, id and label carried.
func classifier(name, protocol, model string, binary bool) kserve.Config {
	url := restURL
	if protocol == kserve.ProtocolGRPC {
		url = grpcURL
	}
	return kserve.Config{
		Name: name, URL: url, Protocol: protocol, Model: model, Binary: binary,
		Inputs: []kserve.Input{{Tensor: "input-0", Fields: []string{"pixels"}}},
		Outputs: []kserve.Output{
			{Tensor: "predict", Field: "predicted"},
			{Tensor: "predict_proba", Field: "confidence", Reduce: kserve.ReduceMax},
		},
		Carry: []string{"id", "label"},
	}
}

func testImages(t testing.TB, n int) []models.Record {
	t.Helper()
	ds, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	var recs []models.Record
	for i, img := range ds.Test()[:n] {
		recs = append(recs, digits.ImageRecord(fmt.Sprint(i), img.Label, img.Pixels[:]))
	}
	return recs
}

// TestServedClassifiers calls each served scikit-learn model over REST
// (JSON), gRPC with typed contents and gRPC with raw binary contents, and
// checks the answers: one record per image, ids and labels carried,
// predictions accurate, confidences probabilities, and the same answer
// whichever way it travelled.
func TestServedClassifiers(t *testing.T) {
	needServer(t)
	recs := testImages(t, 96)
	for _, model := range []struct {
		name   string
		minAcc float64
	}{{"digits-logreg", 0.9}, {"digits-knn", 0.95}, {"digits-mlp", 0.95}} {
		var first []models.Record
		for _, via := range []struct {
			protocol string
			binary   bool
		}{{kserve.ProtocolREST, false}, {kserve.ProtocolGRPC, false}, {kserve.ProtocolGRPC, true}} {
			name := fmt.Sprintf("%s/%s/binary=%v", model.name, via.protocol, via.binary)
			t.Run(name, func(t *testing.T) {
				m, err := kserve.New(classifier("m", via.protocol, model.name, via.binary))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if err := m.Ready(context.Background()); err != nil {
					t.Fatal(err)
				}
				out, err := m.Predict(context.Background(), recs)
				if err != nil {
					t.Fatal(err)
				}
				if len(out) != len(recs) {
					t.Fatalf("%d records for %d images", len(out), len(recs))
				}
				correct := 0
				for i, o := range out {
					if o["id"] != recs[i]["id"] || o["label"] != recs[i]["label"] {
						t.Fatalf("record %d: id/label not carried: %v", i, o)
					}
					p, ok := o["predicted"].(int64)
					c, ok2 := o["confidence"].(float64)
					if !ok || !ok2 || c < 0 || c > 1 {
						t.Fatalf("record %d: predicted %T %v, confidence %T %v", i, o["predicted"], o["predicted"], o["confidence"], o["confidence"])
					}
					if p == int64(recs[i]["label"].(int32)) {
						correct++
					}
				}
				acc := float64(correct) / float64(len(out))
				t.Logf("accuracy %.3f on %d clean test images", acc, len(out))
				if acc < model.minAcc {
					t.Errorf("accuracy %.3f, want at least %.2f", acc, model.minAcc)
				}
				if first == nil {
					first = out
				} else {
					for i := range out {
						if out[i]["predicted"] != first[i]["predicted"] || abs(out[i]["confidence"].(float64)-first[i]["confidence"].(float64)) > 1e-6 {
							t.Fatalf("record %d: %v over this protocol, %v over REST", i, out[i], first[i])
						}
					}
				}
			})
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestAdapterFaults drives each adapter against the real server's faults
// and checks the error says precisely what went wrong.
func TestAdapterFaults(t *testing.T) {
	needServer(t)
	recs := testImages(t, 8)
	cases := []struct {
		name    string
		cfg     func() kserve.Config
		timeout time.Duration
		want    []string
	}{
		{"rest server down", func() kserve.Config {
			c := classifier("down", "rest", "digits-mlp", false)
			c.URL = "http://127.0.0.1:1"
			return c
		}, 5 * time.Second, []string{"server unreachable", "connection refused", "after 2 retries"}},
		{"grpc server down", func() kserve.Config {
			c := classifier("down", "grpc", "digits-mlp", true)
			c.URL = "127.0.0.1:1"
			return c
		}, 5 * time.Second, []string{"Unavailable", "connection refused", "after 2 retries"}},
		{"rest unknown model", func() kserve.Config { return classifier("gone", "rest", "no-such-model", false) },
			5 * time.Second, []string{"404 Not Found", "Model no-such-model not found", "is the model loaded"}},
		{"grpc unknown model", func() kserve.Config { return classifier("gone", "grpc", "no-such-model", true) },
			5 * time.Second, []string{"no-such-model", "not found"}},
		{"rest HTTP 500", func() kserve.Config { return classifier("broken", "rest", "digits-broken", false) },
			5 * time.Second, []string{"500 Internal Server Error", "fails every request"}},
		{"grpc server error", func() kserve.Config { return classifier("broken", "grpc", "digits-broken", true) },
			5 * time.Second, []string{"fails every request"}},
		{"rest slower than timeout", func() kserve.Config { return classifier("slow", "rest", "digits-slow", false) },
			300 * time.Millisecond, []string{"POST http://127.0.0.1:18080/v2/models/digits-slow/infer: no answer in time: context deadline exceeded"}},
		{"grpc slower than timeout", func() kserve.Config { return classifier("slow", "grpc", "digits-slow", true) },
			300 * time.Millisecond, []string{"gRPC ModelInfer digits-slow at 127.0.0.1:18081: no answer in time: context deadline exceeded"}},
		{"rest wrong output shape", func() kserve.Config {
			c := classifier("shape", "rest", "digits-mlp", false)
			c.Outputs = []kserve.Output{{Tensor: "predict_proba", Field: "predicted"}}
			return c
		}, 5 * time.Second, []string{`output tensor "predict_proba" has shape [8 10], want [8] or [8 1]`, `field "predicted"`}},
		{"grpc missing output", func() kserve.Config {
			c := classifier("shape", "grpc", "digits-mlp", true)
			c.Outputs = []kserve.Output{{Tensor: "scores", Field: "confidence"}}
			return c
		}, 5 * time.Second, []string{"scores"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			adapter, err := kserve.New(tc.cfg())
			if err != nil {
				t.Fatal(err)
			}
			defer adapter.Close()
			m := middleware.Chain(adapter, middleware.Retry("m", 2, 10*time.Millisecond, nil))
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			_, err = m.Predict(ctx, recs)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestBreaker opens the circuit after consecutive failures against a
// server that is down, fails fast while open, and probes after the
// cool-down.
func TestBreaker(t *testing.T) {
	recs := []models.Record{digits.ImageRecord("0", 0, make([]float64, 64))}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := classifier("down", "rest", "digits-mlp", false)
	cfg.URL = "http://127.0.0.1:1"
	adapter, err := kserve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := middleware.Chain(adapter, middleware.Breaker("down", middleware.BreakerConfig{Failures: 3, Cooldown: 10 * time.Second, Now: func() time.Time { return now }}))
	for i := 0; i < 3; i++ {
		if _, err := m.Predict(context.Background(), recs); err == nil || errors.Is(err, middleware.ErrCircuitOpen) {
			t.Fatalf("call %d: %v, want a transport error", i, err)
		}
	}
	_, err = m.Predict(context.Background(), recs)
	if !errors.Is(err, middleware.ErrCircuitOpen) || !strings.Contains(err.Error(), "down since 2026-01-01T12:00:00Z after 3 consecutive failures") ||
		!strings.Contains(err.Error(), "retrying after 2026-01-01T12:00:10Z") {
		t.Fatalf("4th call: %v, want the open circuit", err)
	}
	t.Log(err)
	now = now.Add(11 * time.Second)
	if _, err := m.Predict(context.Background(), recs); err == nil || errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("after the cool-down: %v, want a probe that reaches the transport", err)
	}
	if _, err := m.Predict(context.Background(), recs); !errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("after a failed probe: %v, want the circuit open again", err)
	}
}
