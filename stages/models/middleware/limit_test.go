package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

func TestLimitCapsConcurrentCalls(t *testing.T) {
	const n, callers = 3, 12
	var inside, most, calls atomic.Int64
	full := make(chan struct{})
	var fullOnce sync.Once
	m := models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		calls.Add(1)
		cur := inside.Add(1)
		defer inside.Add(-1)
		for {
			old := most.Load()
			if cur <= old || most.CompareAndSwap(old, cur) {
				break
			}
		}
		if cur >= n {
			fullOnce.Do(func() { close(full) })
		}
		// Hold the slot until the cap is reached, so that it is reached
		// however the goroutines are scheduled, then a little longer, so
		// that a limiter letting more in would be caught.
		select {
		case <-full:
		case <-time.After(2 * time.Second):
		}
		time.Sleep(2 * time.Millisecond)
		return in, nil
	})
	w := middleware.Chain(m, middleware.Limit("x", n))
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	start := time.Now()
	for range callers {
		wg.Go(func() {
			if _, err := w.Predict(context.Background(), records(1)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := most.Load(); got > n {
		t.Errorf("%d calls inside the model at once, want at most %d", got, n)
	} else if got < n {
		t.Errorf("at most %d calls inside the model at once, want the cap %d reached", got, n)
	}
	if calls.Load() != callers {
		t.Errorf("%d calls reached the model, want %d", calls.Load(), callers)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v", elapsed)
	}
}

// blocker is a model that holds its call until release is closed.
func blocker(t *testing.T) (m models.Model, entered <-chan struct{}, calls *atomic.Int64) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	in := make(chan struct{}, 16)
	calls = new(atomic.Int64)
	m = models.Func(func(_ context.Context, recs []models.Record) ([]models.Record, error) {
		calls.Add(1)
		in <- struct{}{}
		<-release
		return recs, nil
	})
	return m, in, calls
}

func TestLimitWaitingCallGivesUpWhenContextEnds(t *testing.T) {
	for name, tc := range map[string]struct {
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		"deadline": {func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		"cancel": {func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(30*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(name, func(t *testing.T) {
			m, entered, calls := blocker(t)
			w := middleware.Chain(m, middleware.Limit("x", 1))
			go func() { _, _ = w.Predict(context.Background(), records(1)) }() // takes the one slot
			<-entered

			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			out, err := w.Predict(ctx, records(1))
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("waited %v for a slot after ctx ended", elapsed)
			}
			if out != nil || err == nil {
				t.Fatalf("got (%v, %v), want an error", out, err)
			}
			for _, s := range []string{`model "x"`, "max_concurrency", "1 concurrent call slots", tc.want.Error()} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			var me *middleware.Error
			if !errors.As(err, &me) {
				t.Errorf("error %T is not a *middleware.Error", err)
			}
			if calls.Load() != 1 {
				t.Errorf("the model was called %d times, want once (the waiting call never reaches it)", calls.Load())
			}
		})
	}
}

// A slot is given back however the call ends: an answer, an error or a
// panic (recovered outside the limit).
func TestLimitReleasesTheSlot(t *testing.T) {
	var mode atomic.Int32
	m := models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		switch mode.Load() {
		case 1:
			return nil, errors.New("failed")
		case 2:
			panic("boom")
		}
		return in, nil
	})
	w := middleware.Chain(m, middleware.Recover("x"), middleware.Limit("x", 1))
	for i := range 9 {
		mode.Store(int32(i % 3))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := w.Predict(ctx, records(1))
		cancel()
		if err != nil && strings.Contains(err.Error(), "max_concurrency") {
			t.Fatalf("call %d found no free slot: %v", i, err)
		}
	}
}

func TestLimitZeroOrLessIsNoWrapper(t *testing.T) {
	for _, n := range []int{0, -1} {
		if mw := middleware.Limit("x", n); mw != nil {
			t.Errorf("Limit(x, %d) is a middleware, want nil", n)
		}
	}
}
