package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// script is a model that returns errs[i] on its i-th call (counting from
// 0), and its input once the list runs out.
type script struct {
	errs  []error
	calls atomic.Int64
}

func (s *script) Predict(_ context.Context, in []models.Record) ([]models.Record, error) {
	i := s.calls.Add(1) - 1
	if int(i) < len(s.errs) && s.errs[i] != nil {
		return nil, s.errs[i]
	}
	return in, nil
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

var errRefused = errors.New("connection refused")

func TestRetryGivesUpAfterNRetries(t *testing.T) {
	m := &script{errs: repeat(models.Retryable(errRefused), 100)}
	out, err := middleware.Chain(m, middleware.Retry("x", 3, time.Millisecond, nil)).Predict(context.Background(), records(1))
	if got := m.calls.Load(); got != 4 {
		t.Errorf("%d calls, want 4 (1 and 3 retries)", got)
	}
	if out != nil || err == nil {
		t.Fatalf("got (%v, %v), want an error", out, err)
	}
	if want := "connection refused (after 3 retries)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !errors.Is(err, errRefused) {
		t.Errorf("error %v does not wrap the model's", err)
	}
}

func TestRetryDoesNotRetryOtherErrors(t *testing.T) {
	for name, e := range map[string]error{
		"plain":     errors.New("HTTP 400"),
		"bad input": models.BadInput(errors.New("field x missing")),
		"canceled":  context.Canceled,
	} {
		t.Run(name, func(t *testing.T) {
			m := &script{errs: repeat(e, 100)}
			_, err := middleware.Chain(m, middleware.Retry("x", 3, time.Millisecond, nil)).Predict(context.Background(), records(1))
			if got := m.calls.Load(); got != 1 {
				t.Errorf("%d calls, want exactly 1", got)
			}
			if err != e {
				t.Errorf("error %v, want the model's own, unchanged", err)
			}
		})
	}
}

func TestRetrySucceedsAfterTwoRetryableFailures(t *testing.T) {
	m := &script{errs: repeat(models.Retryable(errRefused), 2)}
	in := records(3)
	out, err := middleware.Chain(m, middleware.Retry("x", 3, time.Millisecond, nil)).Predict(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || &out[0] != &in[0] {
		t.Errorf("answer %v, want the model's", out)
	}
	if got := m.calls.Load(); got != 3 {
		t.Errorf("%d calls, want 3", got)
	}
}

// A retryable failure then another kind: the second is returned at once,
// saying how many retries led to it.
func TestRetryStopsAtANonRetryableError(t *testing.T) {
	errBad := errors.New("HTTP 400")
	m := &script{errs: []error{models.Retryable(errRefused), errBad, nil}}
	_, err := middleware.Chain(m, middleware.Retry("x", 3, time.Millisecond, nil)).Predict(context.Background(), records(1))
	if got := m.calls.Load(); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
	if !errors.Is(err, errBad) || !strings.Contains(err.Error(), "(after 1 retries)") {
		t.Errorf("error %v, want HTTP 400 after 1 retry", err)
	}
}

func TestRetryStopsWhenContextEndsDuringBackoff(t *testing.T) {
	m := &script{errs: repeat(models.Retryable(errRefused), 100)}
	// A first backoff of 10s (at least 7.5s with jitter): only the
	// cancellation can end the wait in time.
	w := middleware.Chain(m, middleware.Retry("x", 3, 10*time.Second, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	out, err := w.Predict(ctx, records(1))
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("returned after %v, want soon after the cancellation", elapsed)
	}
	if got := m.calls.Load(); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
	if out != nil || err == nil {
		t.Fatalf("got (%v, %v), want an error", out, err)
	}
	if want := "connection refused (gave up retrying: context canceled)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !errors.Is(err, errRefused) {
		t.Errorf("error %v does not wrap the model's", err)
	}
}

// Tries are spaced by the backoff: 20ms then 40ms, each less at most a
// quarter of jitter, so at least 45ms in all.
func TestRetryWaitsBetweenTries(t *testing.T) {
	m := &script{errs: repeat(models.Retryable(errRefused), 100)}
	start := time.Now()
	_, err := middleware.Chain(m, middleware.Retry("x", 2, 20*time.Millisecond, nil)).Predict(context.Background(), records(1))
	elapsed := time.Since(start)
	if err == nil || m.calls.Load() != 3 {
		t.Fatalf("error %v after %d calls", err, m.calls.Load())
	}
	if elapsed < 45*time.Millisecond || elapsed > time.Second {
		t.Errorf("3 tries took %v, want at least 45ms of backoff", elapsed)
	}
}

func TestRetryLogsEachRetry(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	m := &script{errs: repeat(models.Retryable(errRefused), 2)}
	if _, err := middleware.Chain(m, middleware.Retry("x", 3, time.Millisecond, zap.New(core))).Predict(context.Background(), records(1)); err != nil {
		t.Fatal(err)
	}
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d log entries, want one per retry (2): %v", len(entries), entries)
	}
	for i, e := range entries {
		f := e.ContextMap()
		if f["model"] != "x" || f["retry"] != int64(i+1) || f["error"] != "connection refused" {
			t.Errorf("entry %d: %s %v", i, e.Message, f)
		}
	}
}

func TestRetryZeroOrLessIsNoWrapper(t *testing.T) {
	for _, n := range []int{0, -1} {
		if mw := middleware.Retry("x", n, time.Millisecond, nil); mw != nil {
			t.Errorf("Retry(x, %d) is a middleware, want nil", n)
		}
	}
}
