package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// honouring is a model that answers after d unless its ctx ends first.
func honouring(d time.Duration) models.Model {
	return models.Func(func(ctx context.Context, in []models.Record) ([]models.Record, error) {
		select {
		case <-time.After(d):
			return in, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// ignoring is a model that ignores its ctx and answers after 3s, or when
// the test ends. finished reports whether it has returned.
func ignoring(t *testing.T) (m models.Model, finished *atomic.Bool) {
	finished = new(atomic.Bool)
	release := make(chan struct{})
	done := make(chan struct{})
	started := make(chan struct{}, 1)
	t.Cleanup(func() {
		close(release)
		select {
		case <-started:
			<-done // do not leave the model's goroutine to the next test
		default:
		}
	})
	m = models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		started <- struct{}{}
		defer close(done)
		defer finished.Store(true)
		select {
		case <-time.After(3 * time.Second):
		case <-release:
		}
		return in, nil
	})
	return m, finished
}

func TestTimeoutSlowModelHonouringContext(t *testing.T) {
	deadlines := make(chan time.Time, 1)
	slow := models.Func(func(ctx context.Context, in []models.Record) ([]models.Record, error) {
		if d, ok := ctx.Deadline(); ok {
			deadlines <- d
		}
		return honouring(3*time.Second).Predict(ctx, in)
	})
	w := middleware.Chain(slow, middleware.Timeout("x", 50*time.Millisecond))
	start := time.Now()
	out, err := w.Predict(context.Background(), records(1))
	elapsed := time.Since(start)
	if out != nil {
		t.Errorf("answer %v with the error, want none", out)
	}
	if err == nil {
		t.Fatal("no error from a model slower than its timeout")
	}
	if !strings.Contains(err.Error(), `model "x" timed out after 50ms`) {
		t.Errorf("error %q does not say the model timed out after 50ms", err)
	}
	var me *middleware.Error
	if !errors.As(err, &me) {
		t.Errorf("error %T is not a *middleware.Error", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if elapsed < 50*time.Millisecond || elapsed > time.Second {
		t.Errorf("returned after %v, want about 50ms", elapsed)
	}
	select {
	case d := <-deadlines:
		// The deadline was set 50ms after a moment within the call.
		if d.Before(start.Add(50*time.Millisecond)) || d.After(start.Add(50*time.Millisecond+elapsed)) {
			t.Errorf("model's ctx deadline is start+%v, want 50ms after the call began", d.Sub(start))
		}
	default:
		t.Error("the model's ctx has no deadline")
	}
}

func TestTimeoutAbandonsModelIgnoringContext(t *testing.T) {
	m, finished := ignoring(t)
	w := middleware.Chain(m, middleware.Timeout("x", 50*time.Millisecond))
	start := time.Now()
	out, err := w.Predict(context.Background(), records(1))
	elapsed := time.Since(start)
	if finished.Load() {
		t.Fatal("the model finished before the call returned; it should have been abandoned")
	}
	if out != nil || err == nil || !strings.Contains(err.Error(), `model "x" timed out after 50ms`) {
		t.Errorf("got (%v, %v), want the timeout error", out, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if elapsed < 50*time.Millisecond || elapsed > time.Second {
		t.Errorf("returned after %v although the model sleeps 3s, want about 50ms", elapsed)
	}
}

func TestTimeoutCallerCancelled(t *testing.T) {
	for name, model := range map[string]func(t *testing.T) models.Model{
		"honouring": func(*testing.T) models.Model { return honouring(3 * time.Second) },
		"ignoring":  func(t *testing.T) models.Model { m, _ := ignoring(t); return m },
	} {
		t.Run(name, func(t *testing.T) {
			w := middleware.Chain(model(t), middleware.Timeout("x", 10*time.Second))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(20*time.Millisecond, cancel)
			start := time.Now()
			out, err := w.Predict(ctx, records(1))
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("returned after %v, want soon after the cancellation", elapsed)
			}
			if out != nil || !errors.Is(err, context.Canceled) {
				t.Errorf("got (%v, %v), want an error wrapping context.Canceled", out, err)
			}
			if err != nil && strings.Contains(err.Error(), "timed out") {
				t.Errorf("error %q is the timeout's, want the caller's cancellation", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v wraps DeadlineExceeded", err)
			}
		})
	}
}

// The caller's own deadline, shorter than the timeout, is the caller's
// error, not the model's timeout.
func TestTimeoutCallerDeadlineFirst(t *testing.T) {
	w := middleware.Chain(honouring(3*time.Second), middleware.Timeout("x", 10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := w.Predict(ctx, records(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if strings.Contains(err.Error(), "timed out after 10s") {
		t.Errorf("error %q blames the model's 10s timeout for the caller's deadline", err)
	}
}

func TestTimeoutFastModelPassesThrough(t *testing.T) {
	w := middleware.Chain(honouring(time.Millisecond), middleware.Timeout("x", time.Second))
	in := records(4)
	out, err := w.Predict(context.Background(), in)
	if err != nil || len(out) != len(in) || &out[0] != &in[0] {
		t.Errorf("got (%v, %v), want the model's answer unchanged", out, err)
	}

	errModel := errors.New("bad gateway")
	failing := models.Func(func(context.Context, []models.Record) ([]models.Record, error) { return nil, errModel })
	if _, err := middleware.Chain(failing, middleware.Timeout("x", time.Second)).Predict(context.Background(), in); err != errModel {
		t.Errorf("error %v, want the model's own error", err)
	}
}

// A model's own DeadlineExceeded (an inner deadline of its own) before the
// timeout expires is its error, not a timeout of the wrapper.
func TestTimeoutModelsOwnDeadlineIsNotATimeout(t *testing.T) {
	inner := models.Func(func(context.Context, []models.Record) ([]models.Record, error) {
		return nil, context.DeadlineExceeded
	})
	_, err := middleware.Chain(inner, middleware.Timeout("x", time.Second)).Predict(context.Background(), records(1))
	if err != context.DeadlineExceeded {
		t.Errorf("error %v, want the model's own error unchanged", err)
	}
}
