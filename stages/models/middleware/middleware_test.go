package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// records makes n distinct input records.
func records(n int) []models.Record {
	out := make([]models.Record, n)
	for i := range out {
		out[i] = models.Record{"i": i}
	}
	return out
}

// stub is a comparable model (a pointer), unlike models.Func, so tests can
// check which model Innermost returns.
type stub struct{ name string }

func (s *stub) Predict(_ context.Context, in []models.Record) ([]models.Record, error) {
	return in, nil
}

// tracer is a middleware that logs its entry and exit around the next model.
func tracer(name string, log *[]string) middleware.Middleware {
	return func(next models.Model) models.Model {
		return models.Func(func(ctx context.Context, in []models.Record) ([]models.Record, error) {
			*log = append(*log, name+">")
			out, err := next.Predict(ctx, in)
			*log = append(*log, "<"+name)
			return out, err
		})
	}
}

func TestChainFirstMiddlewareIsOutermost(t *testing.T) {
	var log []string
	m := models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
		log = append(log, "model")
		return in, nil
	})
	w := middleware.Chain(m, tracer("a", &log), nil, tracer("b", &log), nil, tracer("c", &log), nil)
	in := records(2)
	out, err := w.Predict(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("answer %v, want %v", out, in)
	}
	want := []string{"a>", "b>", "c>", "model", "<c", "<b", "<a"}
	if !slices.Equal(log, want) {
		t.Errorf("call order %v, want %v", log, want)
	}
}

func TestChainWithoutMiddlewaresReturnsTheModel(t *testing.T) {
	m := &stub{"m"}
	if got := middleware.Chain(m); got != m {
		t.Errorf("Chain(m) = %v, want m itself", got)
	}
	if got := middleware.Chain(m, nil, nil); got != m {
		t.Errorf("Chain(m, nil, nil) = %v, want m itself", got)
	}
	// The constructors that return nil for "off" are skipped like a nil.
	off := []middleware.Middleware{
		middleware.Limit("m", 0),
		middleware.Retry("m", 0, time.Millisecond, nil),
		middleware.Breaker("m", middleware.BreakerConfig{Failures: -1}),
	}
	if got := middleware.Chain(m, off...); got != m {
		t.Errorf("Chain(m, disabled wrappers...) = %T, want m itself", got)
	}
}

// allWrappers is one of each wrapper of the package, all switched on.
func allWrappers() []middleware.Middleware {
	return []middleware.Middleware{
		middleware.Price(1.5),
		middleware.Timeout("m", time.Second),
		middleware.Breaker("m", middleware.BreakerConfig{Failures: 3, Cooldown: time.Second}),
		middleware.Limit("m", 2),
		middleware.Retry("m", 2, time.Millisecond, nil),
		middleware.Recover("m"),
	}
}

func TestInnermostUnwrapsEveryWrapper(t *testing.T) {
	m := &stub{"m"}
	if got := middleware.Innermost(m); got != m {
		t.Errorf("Innermost of an unwrapped model = %v, want the model", got)
	}
	mws := allWrappers()
	w := middleware.Chain(m, mws...)
	if got := middleware.Innermost(w); got != m {
		t.Errorf("Innermost(chain) = %T %v, want the inner model", got, got)
	}
	// Every wrapper is an Unwrapper whose Unwrap is the next model in.
	depth := 0
	for cur := w; cur != models.Model(m); depth++ {
		u, ok := cur.(middleware.Unwrapper)
		if !ok {
			t.Fatalf("wrapper %d (%T) is not an Unwrapper", depth, cur)
		}
		cur = u.Unwrap()
	}
	if depth != len(mws) {
		t.Errorf("unwrapped %d layers, want %d", depth, len(mws))
	}
	// Each wrapper alone unwraps to the model it was given.
	for i, mw := range mws {
		if got := mw(m).(middleware.Unwrapper).Unwrap(); got != m {
			t.Errorf("wrapper %d (%T): Unwrap = %v, want the model", i, mw(m), got)
		}
	}
}

// foreign is a wrapper from outside the package that implements Unwrapper.
type foreign struct{ next models.Model }

func (f foreign) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	return f.next.Predict(ctx, in)
}
func (f foreign) Unwrap() models.Model { return f.next }

func TestInnermostFollowsForeignUnwrappers(t *testing.T) {
	m := &stub{"m"}
	w := middleware.Chain(foreign{middleware.Recover("m")(foreign{m})}, middleware.Timeout("m", time.Second))
	if got := middleware.Innermost(w); got != m {
		t.Errorf("Innermost = %T, want the inner model", got)
	}
}

type ctxKey struct{}

// TestWrappersNeverChangeAnAnswer checks each wrapper, and all of them
// chained, hand the model the caller's records and context values, and
// hand back the model's own answer slice or its own error.
func TestWrappersNeverChangeAnAnswer(t *testing.T) {
	errModel := errors.New("model says no")
	cases := map[string][]middleware.Middleware{"all": allWrappers()}
	for _, mw := range allWrappers() {
		name := strings.TrimPrefix(fmt.Sprintf("%T", mw(&stub{})), "*middleware.")
		cases[name] = []middleware.Middleware{mw}
	}
	for name, mws := range cases {
		t.Run(name, func(t *testing.T) {
			in := records(3)
			answer := records(3)
			answer[0]["extra"] = "x"
			type call struct {
				in    []models.Record
				value any
			}
			calls := make(chan call, 2)
			var fail atomic.Bool
			m := models.Func(func(ctx context.Context, got []models.Record) ([]models.Record, error) {
				calls <- call{got, ctx.Value(ctxKey{})}
				if fail.Load() {
					return nil, errModel
				}
				return answer, nil
			})
			w := middleware.Chain(m, mws...)
			ctx := context.WithValue(context.Background(), ctxKey{}, "v")
			out, err := w.Predict(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			c := <-calls
			if reflect.ValueOf(c.in).Pointer() != reflect.ValueOf(in).Pointer() || len(c.in) != len(in) {
				t.Errorf("model got %v, want the caller's own slice %v", c.in, in)
			}
			if c.value != "v" {
				t.Errorf("model's ctx value = %v, want the caller's", c.value)
			}
			want := records(3)
			want[0]["extra"] = "x"
			if reflect.ValueOf(out).Pointer() != reflect.ValueOf(answer).Pointer() || !reflect.DeepEqual(out, want) {
				t.Errorf("answer %v, want the model's own %v", out, answer)
			}

			fail.Store(true)
			out, err = w.Predict(ctx, in)
			if out != nil || !errors.Is(err, errModel) {
				t.Errorf("got (%v, %v), want the model's error", out, err)
			}
			if len(mws) == 1 && err != errModel {
				t.Errorf("error %#v, want the model's error itself", err)
			}
		})
	}
}

// TestCompiledOrder runs the order the stage compiler uses (price,
// timeout, breaker, limit, retry, recover): a panic in the goroutine the
// timeout starts is recovered there, retries happen inside the timeout,
// and the outermost wrapper is the Pricer.
func TestCompiledOrder(t *testing.T) {
	chain := func(m models.Model) models.Model {
		return middleware.Chain(m,
			middleware.Price(2),
			middleware.Timeout("x", time.Second),
			middleware.Breaker("x", middleware.BreakerConfig{Failures: 5, Cooldown: time.Second}),
			middleware.Limit("x", 2),
			middleware.Retry("x", 2, time.Millisecond, nil),
			middleware.Recover("x"),
		)
	}
	t.Run("panic", func(t *testing.T) {
		w := chain(models.Func(func(context.Context, []models.Record) ([]models.Record, error) { panic("kaboom") }))
		_, err := w.Predict(context.Background(), records(1))
		if err == nil || !strings.Contains(err.Error(), `model "x" panicked: kaboom`) {
			t.Errorf("error %v, want the recovered panic", err)
		}
	})
	t.Run("retried", func(t *testing.T) {
		calls := 0
		in := records(1)
		w := chain(models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) {
			calls++
			if calls < 3 {
				return nil, models.Retryable(errors.New("connection refused"))
			}
			return in, nil
		}))
		out, err := w.Predict(context.Background(), in)
		if err != nil || len(out) != 1 || calls != 3 {
			t.Errorf("got (%v, %v) after %d calls, want the answer after 3", out, err, calls)
		}
		p, ok := w.(models.Pricer)
		if !ok {
			t.Fatalf("%T is not a Pricer", w)
		}
		if ms, ok := p.PriceMS(); ms != 2 || !ok {
			t.Errorf("PriceMS() = %v, %v; want 2, true", ms, ok)
		}
	})
}
