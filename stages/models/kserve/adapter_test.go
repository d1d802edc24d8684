package kserve_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// stub is a minimal Open Inference Protocol REST server: it answers
// predict = 7 for every row, after failing the first `fail` requests with
// status `code`, and records how many requests and how many at once.
type stub struct {
	fail, code     int32
	delay          time.Duration
	calls, running atomic.Int32
	peak           atomic.Int32
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.calls.Add(1)
	cur := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		p := s.peak.Load()
		if cur <= p || s.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	time.Sleep(s.delay)
	if n <= s.fail {
		w.WriteHeader(int(s.code))
		_, _ = w.Write([]byte(`{"error":"stub failure"}`))
		return
	}
	var req struct {
		Inputs []struct {
			Shape []int64 `json:"shape"`
		} `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rows := req.Inputs[0].Shape[0]
	data := make([]int64, rows)
	for i := range data {
		data[i] = 7
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"model_name": "stub", "outputs": []any{
		map[string]any{"name": "predict", "datatype": "INT64", "shape": []int64{rows, 1}, "data": data}}})
}

func stubModel(t *testing.T, s *stub, mod func(*kserve.Config)) *kserve.Model {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := kserve.Config{Name: "stub", URL: srv.URL, Model: "stub",
		Inputs:  []kserve.Input{{Tensor: "x", Fields: []string{"pixels"}}},
		Outputs: []kserve.Output{{Tensor: "predict", Field: "predicted"}}}
	if mod != nil {
		mod(&cfg)
	}
	m, err := kserve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func oneImage() []models.Record {
	return []models.Record{digits.ImageRecord("a", 1, make([]float64, 64))}
}

// TestRetriesTransportErrorsOnly: 503s are retried until an answer comes;
// a 500 is an answer (the model failed) and is not retried.
func TestRetriesTransportErrorsOnly(t *testing.T) {
	cases := []struct {
		name      string
		fail      int32
		code      int32
		wantErr   string
		wantCalls int32
	}{
		{"503 twice then an answer", 2, 503, "", 3},
		{"503 beyond the retries", 5, 503, "503 Service Unavailable", 3},
		{"500 is not retried", 1, 500, "500 Internal Server Error", 1},
		{"400 is not retried", 1, 400, "400 Bad Request", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &stub{fail: tc.fail, code: tc.code}
			m := middleware.Chain(stubModel(t, s, nil), middleware.Retry("stub", 2, time.Millisecond, nil))
			out, err := m.Predict(context.Background(), oneImage())
			if tc.wantErr == "" {
				if err != nil || out[0]["predicted"] != int64(7) {
					t.Fatalf("got %v, %v", out, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to say %q", err, tc.wantErr)
			}
			if got := s.calls.Load(); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
		})
	}
}

// TestMaxConcurrency: 12 concurrent batches through a model capped at 3
// never have more than 3 requests at the server at once.
func TestMaxConcurrency(t *testing.T) {
	s := &stub{delay: 20 * time.Millisecond}
	m := middleware.Chain(stubModel(t, s, nil), middleware.Limit("stub", 3))
	done := make(chan error)
	for i := 0; i < 12; i++ {
		go func() { _, err := m.Predict(context.Background(), oneImage()); done <- err }()
	}
	for i := 0; i < 12; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if p := s.peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency at the server %d, want at most 3 (and the cap reached)", p)
	}
}

// TestMappingErrors: records that do not fit the input mapping are named,
// and marked as the batch's fault, not the server's.
func TestMappingErrors(t *testing.T) {
	m := stubModel(t, &stub{}, nil)
	recs := []models.Record{digits.ImageRecord("a", 1, make([]float64, 64)), {"id": "b", "pixels": []any{1.0, 2.0}}}
	_, err := m.Predict(context.Background(), recs)
	if err == nil || !strings.Contains(err.Error(), `record 1 (id "b") gives 2 values but earlier records gave 64`) {
		t.Fatalf("error %v", err)
	}
	if !models.IsBadInput(err) || models.IsRetryable(err) {
		t.Errorf("a mapping error is marked bad input %v, retryable %v; want bad input only", models.IsBadInput(err), models.IsRetryable(err))
	}
	_, err = m.Predict(context.Background(), []models.Record{{"id": "c"}})
	if err == nil || !strings.Contains(err.Error(), `record 0 (id "c") has no field "pixels"`) {
		t.Fatalf("error %v", err)
	}
}

// TestBearerToken: a token from token_env or token_file is sent as
// "Authorization: Bearer"; an empty variable fails the call and names it.
func TestBearerToken(t *testing.T) {
	var got atomic.Value
	s := &stub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		if r.Method == http.MethodGet { // the readiness check
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEXIFLOW_TEST_TOKEN", " from-env ")
	for _, tc := range []struct {
		name string
		set  func(*kserve.Config)
		want string
	}{
		{"token_env", func(c *kserve.Config) { c.Auth.TokenEnv = "FLEXIFLOW_TEST_TOKEN" }, "Bearer from-env"},
		{"token_file", func(c *kserve.Config) { c.Auth.TokenFile = file }, "Bearer from-file"},
		{"none", func(*kserve.Config) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := stubModel(t, s, func(c *kserve.Config) { c.URL = srv.URL; tc.set(c) })
			if _, err := m.Predict(context.Background(), oneImage()); err != nil {
				t.Fatal(err)
			}
			if h := got.Load(); h != tc.want {
				t.Errorf("Authorization %q, want %q", h, tc.want)
			}
			if err := m.Ready(context.Background()); err != nil {
				t.Fatalf("ready: %v", err)
			}
			if h := got.Load(); h != tc.want {
				t.Errorf("Authorization on the readiness check %q, want %q", h, tc.want)
			}
		})
	}
	t.Setenv("FLEXIFLOW_TEST_TOKEN", "")
	m := stubModel(t, s, func(c *kserve.Config) { c.URL = srv.URL; c.Auth.TokenEnv = "FLEXIFLOW_TEST_TOKEN" })
	if _, err := m.Predict(context.Background(), oneImage()); err == nil || !strings.Contains(err.Error(), "FLEXIFLOW_TEST_TOKEN (token_env) is empty") {
		t.Errorf("error %v, want the empty variable named", err)
	}
}

// TestBreakerProbeNotLost: after the cool-down the first call probes the
// server. A probe that ends before the server could answer (its batch does
// not fit the mapping, or the stage stops) must hand the probe on to the
// next call instead of leaving the circuit open for good.
func TestBreakerProbeNotLost(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := &stub{fail: 1 << 30, code: 503}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	m := middleware.Chain(stubModel(t, s, func(c *kserve.Config) { c.URL = srv.URL }),
		middleware.Breaker("stub", middleware.BreakerConfig{Failures: 1, Cooldown: 10 * time.Second, Now: func() time.Time { return now }}))
	if _, err := m.Predict(context.Background(), oneImage()); err == nil || errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("first call: %v, want the 503", err)
	}
	stopped, stop := context.WithCancel(context.Background())
	stop()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		recs []models.Record
	}{
		{"a batch that does not fit", context.Background(), []models.Record{{"id": "x"}}},
		{"a stopping stage", stopped, oneImage()},
	} {
		now = now.Add(11 * time.Second)
		if _, err := m.Predict(tc.ctx, tc.recs); err == nil || errors.Is(err, middleware.ErrCircuitOpen) {
			t.Fatalf("%s: %v, want it to be let through as the probe", tc.name, err)
		}
		calls := s.calls.Load()
		if _, err := m.Predict(context.Background(), oneImage()); err == nil || errors.Is(err, middleware.ErrCircuitOpen) || s.calls.Load() != calls+1 {
			t.Fatalf("after %s: %v, want the next call to probe the server", tc.name, err)
		}
	}
}
