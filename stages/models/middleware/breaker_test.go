package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// clock is a settable time for BreakerConfig.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// switchable is a model that returns whatever error is set (nil: its
// input), counting its calls.
type switchable struct {
	mu    sync.Mutex
	err   error
	calls atomic.Int64
}

func (s *switchable) set(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *switchable) Predict(_ context.Context, in []models.Record) ([]models.Record, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return in, nil
}

var errDown = errors.New("boom")

// breakerFixture is a breaker of 3 failures and 10s cooldown on a fake
// clock around a switchable model.
func breakerFixture(t *testing.T, log *zap.Logger) (models.Model, *switchable, *clock) {
	t.Helper()
	m, c := &switchable{}, newClock()
	mw := middleware.Breaker("x", middleware.BreakerConfig{Failures: 3, Cooldown: 10 * time.Second, Now: c.Now, Log: log})
	if mw == nil {
		t.Fatal("Breaker returned no middleware")
	}
	return middleware.Chain(m, mw), m, c
}

// reaches calls w and reports whether the call got through to m (its
// error was not the circuit's).
func reaches(t *testing.T, w models.Model, m *switchable) (bool, error) {
	t.Helper()
	before := m.calls.Load()
	_, err := w.Predict(context.Background(), records(1))
	through := m.calls.Load() == before+1
	if open := errors.Is(err, middleware.ErrCircuitOpen); open == through {
		t.Fatalf("ErrCircuitOpen is %v but the model was called: %v (error %v)", open, through, err)
	}
	return through, err
}

// open makes the fixture's circuit open with three failures.
func open(t *testing.T, w models.Model, m *switchable) {
	t.Helper()
	m.set(errDown)
	for i := range 3 {
		if ok, err := reaches(t, w, m); !ok || err != errDown {
			t.Fatalf("failure %d: reached %v, error %v; want the model's error", i+1, ok, err)
		}
	}
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	w, m, _ := breakerFixture(t, nil)
	open(t, w, m)
	m.set(nil) // the model would answer now, but the circuit is open
	for range 3 {
		out, err := w.Predict(context.Background(), records(1))
		if out != nil || !errors.Is(err, middleware.ErrCircuitOpen) {
			t.Fatalf("got (%v, %v), want ErrCircuitOpen", out, err)
		}
		var me *middleware.Error
		if !errors.As(err, &me) {
			t.Errorf("error %T is not a *middleware.Error", err)
		}
		for _, s := range []string{
			`model "x"`, "circuit open", "down since 2026-01-01T12:00:00Z",
			"after 3 consecutive failures", "(last: boom)", "retrying after 2026-01-01T12:00:10Z",
		} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	if got := m.calls.Load(); got != 3 {
		t.Errorf("the model was called %d times, want 3 (none while open)", got)
	}
}

func TestBreakerCountsOnlyConsecutiveFailures(t *testing.T) {
	w, m, _ := breakerFixture(t, nil)
	for _, e := range []error{errDown, errDown, nil, errDown, errDown, nil, errDown, errDown} {
		m.set(e)
		if ok, _ := reaches(t, w, m); !ok {
			t.Fatal("the circuit opened without 3 failures in a row")
		}
	}
	m.set(errDown)
	_, _ = reaches(t, w, m) // the third in a row
	if ok, _ := reaches(t, w, m); ok {
		t.Error("the circuit is closed after 3 failures in a row")
	}
}

// gated passes calls to next, but holds the first call after arm until
// release is closed.
type gated struct {
	next    models.Model
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gated) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return g.next.Predict(ctx, in)
}

func TestBreakerProbesOneCallAtATime(t *testing.T) {
	m, c := &switchable{}, newClock()
	g := &gated{next: m, entered: make(chan struct{}), release: make(chan struct{})}
	w := middleware.Chain(g, middleware.Breaker("x", middleware.BreakerConfig{Failures: 3, Cooldown: 10 * time.Second, Now: c.Now}))
	open(t, w, m)
	c.Advance(10*time.Second - time.Nanosecond)
	if ok, _ := reaches(t, w, m); ok {
		t.Fatal("a call got through before the cooldown ended")
	}
	c.Advance(time.Nanosecond)

	// The probe is held inside the model; meanwhile other calls are refused.
	m.set(nil)
	g.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := w.Predict(context.Background(), records(1))
		done <- err
	}()
	<-g.entered
	for range 3 {
		if ok, _ := reaches(t, w, m); ok {
			t.Fatal("a second call got through while the probe was in flight")
		}
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if ok, err := reaches(t, w, m); !ok || err != nil {
		t.Errorf("after the probe answered: reached %v, error %v; want the circuit closed", ok, err)
	}
}

func TestBreakerSuccessfulProbeCloses(t *testing.T) {
	w, m, c := breakerFixture(t, nil)
	open(t, w, m)
	c.Advance(10 * time.Second)
	m.set(nil)
	if ok, err := reaches(t, w, m); !ok || err != nil {
		t.Fatalf("probe reached %v, error %v; want the answer", ok, err)
	}
	for range 5 {
		if ok, err := reaches(t, w, m); !ok || err != nil {
			t.Fatalf("after the probe: reached %v, error %v", ok, err)
		}
	}
	// Closed means a fresh count: two failures do not open it.
	m.set(errDown)
	_, _ = reaches(t, w, m)
	_, _ = reaches(t, w, m)
	if ok, _ := reaches(t, w, m); !ok {
		t.Error("the circuit reopened before three new failures")
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	w, m, c := breakerFixture(t, nil)
	open(t, w, m)
	c.Advance(15 * time.Second) // probe at 12:00:15
	m.set(errors.New("still down"))
	if ok, err := reaches(t, w, m); !ok || err == nil || errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("probe reached %v, error %v; want the model's error", ok, err)
	}
	m.set(nil)
	ok, err := reaches(t, w, m)
	if ok {
		t.Fatal("a call got through right after a failed probe")
	}
	for _, s := range []string{"down since 2026-01-01T12:00:00Z", "(last: still down)", "retrying after 2026-01-01T12:00:25Z"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	c.Advance(10*time.Second - time.Nanosecond)
	if ok, _ := reaches(t, w, m); ok {
		t.Fatal("a call got through before the new cooldown ended")
	}
	c.Advance(time.Nanosecond)
	if ok, err := reaches(t, w, m); !ok || err != nil {
		t.Errorf("second probe reached %v, error %v; want the answer", ok, err)
	}
}

func TestBreakerIgnoresBadInput(t *testing.T) {
	w, m, c := breakerFixture(t, nil)
	bad := models.BadInput(errors.New("field x missing"))
	m.set(bad)
	for range 10 {
		if ok, err := reaches(t, w, m); !ok || err != bad {
			t.Fatalf("reached %v, error %v; want the bad-input error itself", ok, err)
		}
	}
	// Bad input between failures neither counts nor resets the count.
	m.set(errDown)
	_, _ = reaches(t, w, m)
	_, _ = reaches(t, w, m)
	m.set(bad)
	_, _ = reaches(t, w, m)
	m.set(errDown)
	_, _ = reaches(t, w, m)
	if ok, _ := reaches(t, w, m); ok {
		t.Fatal("the circuit is closed after 3 model failures")
	}

	// A probe that meets bad input hands the probe on to the next call.
	c.Advance(10 * time.Second)
	m.set(bad)
	if ok, err := reaches(t, w, m); !ok || err != bad {
		t.Fatalf("probe reached %v, error %v; want the bad-input error", ok, err)
	}
	m.set(nil)
	if ok, err := reaches(t, w, m); !ok || err != nil {
		t.Errorf("next call reached %v, error %v; want it to probe and close the circuit", ok, err)
	}
}

func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	c := newClock()
	var calls atomic.Int64
	var fail atomic.Bool
	m := models.Func(func(ctx context.Context, in []models.Record) ([]models.Record, error) {
		calls.Add(1)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("post: %w", err)
		}
		if fail.Load() {
			return nil, errDown
		}
		return in, nil
	})
	w := middleware.Chain(m, middleware.Breaker("x", middleware.BreakerConfig{Failures: 1, Cooldown: 10 * time.Second, Now: c.Now}))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	call := func(ctx context.Context) error {
		_, err := w.Predict(ctx, records(1))
		return err
	}
	for range 3 {
		if err := call(cancelled); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want the cancellation", err)
		}
	}
	if err := call(context.Background()); err != nil {
		t.Fatalf("after cancelled calls (Failures: 1): %v; want the circuit still closed", err)
	}

	// Open it, then let a probe be cut short by the caller: the next call
	// probes.
	fail.Store(true)
	if err := call(context.Background()); err != errDown {
		t.Fatalf("error %v", err)
	}
	if err := call(context.Background()); !errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("error %v, want the circuit open", err)
	}
	c.Advance(10 * time.Second)
	if err := call(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled probe: %v", err)
	}
	fail.Store(false)
	before := calls.Load()
	if err := call(context.Background()); err != nil || calls.Load() != before+1 {
		t.Errorf("error %v; want the next call to probe and close the circuit", err)
	}
}

// A call that ran out of time is the model's failure: whether the ctx the
// breaker sees hit its deadline (as under a timeout wrapper outside the
// breaker, in the compiled order) or a timeout inside the breaker gave up.
func TestBreakerCountsDeadlines(t *testing.T) {
	slow := models.Func(func(ctx context.Context, in []models.Record) ([]models.Record, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(3 * time.Second):
			return in, nil
		}
	})
	for name, tc := range map[string]struct {
		mws  []middleware.Middleware
		ctx  func() (context.Context, context.CancelFunc)
		want string
	}{
		"ctx deadline": {nil, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 10*time.Millisecond)
		}, "context deadline exceeded"},
		"inner timeout": {[]middleware.Middleware{middleware.Timeout("x", 10*time.Millisecond)}, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, `model "x" timed out after 10ms`},
	} {
		t.Run(name, func(t *testing.T) {
			c := newClock()
			mws := append([]middleware.Middleware{middleware.Breaker("x", middleware.BreakerConfig{Failures: 2, Cooldown: 10 * time.Second, Now: c.Now})}, tc.mws...)
			w := middleware.Chain(slow, mws...)
			for range 2 {
				ctx, cancel := tc.ctx()
				_, err := w.Predict(ctx, records(1))
				cancel()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
			}
			if _, err := w.Predict(context.Background(), records(1)); !errors.Is(err, middleware.ErrCircuitOpen) {
				t.Errorf("error %v after 2 timeouts, want the circuit open", err)
			}
		})
	}
}

func TestBreakerLogsOpeningAndClosingOnce(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	w, m, c := breakerFixture(t, zap.New(core))
	open(t, w, m)
	_, _ = reaches(t, w, m) // refused: no log
	c.Advance(10 * time.Second)
	_, _ = reaches(t, w, m) // failed probe: still open, no new log
	c.Advance(10 * time.Second)
	m.set(nil)
	_, _ = reaches(t, w, m) // closes
	_, _ = reaches(t, w, m) // closed already
	var got []string
	for _, e := range logs.All() {
		got = append(got, fmt.Sprintf("%s %s model=%v", e.Level, e.Message, e.ContextMap()["model"]))
	}
	want := []string{
		"warn circuit opened: calls fail fast until the cool-down ends model=x",
		"info circuit closed: the model answers again model=x",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBreakerDisabled(t *testing.T) {
	if mw := middleware.Breaker("x", middleware.BreakerConfig{Failures: -1, Cooldown: time.Second}); mw != nil {
		t.Error("Breaker with Failures -1 is a middleware, want nil")
	}
}

// Many callers at once on the real clock, for the race detector: the
// breaker neither races nor deadlocks, and while it is closed every call
// reaches the model.
func TestBreakerConcurrentUse(t *testing.T) {
	var calls atomic.Int64
	m := models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		calls.Add(1)
		if rand.IntN(3) == 0 {
			return nil, errDown
		}
		return in, nil
	})
	w := middleware.Chain(m, middleware.Breaker("x", middleware.BreakerConfig{Failures: 2, Cooldown: time.Millisecond}))
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 200 {
				_, err := w.Predict(context.Background(), records(1))
				if errors.Is(err, middleware.ErrCircuitOpen) {
					refused.Add(1)
				} else if err != nil && err != errDown {
					t.Errorf("unexpected error %v", err)
				}
			}
		})
	}
	wg.Wait()
	if calls.Load()+refused.Load() != 8*200 {
		t.Errorf("%d calls reached the model and %d were refused, want %d in all", calls.Load(), refused.Load(), 8*200)
	}
}

// In the compiled order the timeout is outside the breaker. A probe into a
// model that ignores its ctx and hangs is abandoned by the timeout while
// the breaker still waits on it; the probe is given up after a cool-down,
// so the next call probes again and a model that answers again closes
// the circuit.
func TestBreakerAbandonedProbeIsRetriedAfterCooldown(t *testing.T) {
	c := newClock()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var hang, fail atomic.Bool
	m := models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		if hang.Load() {
			<-release // ignores its ctx
		}
		if fail.Load() {
			return nil, errDown
		}
		return in, nil
	})
	w := middleware.Chain(m,
		middleware.Timeout("x", 20*time.Millisecond),
		middleware.Breaker("x", middleware.BreakerConfig{Failures: 1, Cooldown: 10 * time.Second, Now: c.Now}),
	)
	fail.Store(true)
	if _, err := w.Predict(context.Background(), records(1)); err != errDown {
		t.Fatalf("error %v, want the model's", err)
	}
	c.Advance(10 * time.Second)
	hang.Store(true)
	if _, err := w.Predict(context.Background(), records(1)); err == nil || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Fatalf("probe: error %v, want the timeout", err)
	}
	// The model is well again, and an hour has passed.
	hang.Store(false)
	fail.Store(false)
	c.Advance(time.Hour)
	if _, err := w.Predict(context.Background(), records(1)); err != nil {
		t.Errorf("an hour after the abandoned probe: %v; want a new probe to reach the model and close the circuit", err)
	}
}
