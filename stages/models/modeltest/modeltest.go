// Package modeltest is the conformance suite every model kind passes: one
// output record per input, in order; safe concurrent use; a context that
// ends stops the call; a batch the model cannot read is refused with an
// error that says which record and field; an empty batch is answered
// empty. A kind's test calls Run with a Case that says how to build its
// model and what its records look like.
package modeltest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

// Case describes one model for the suite.
type Case struct {
	// New builds the model under test.
	New func(t *testing.T) models.Model
	// Records returns n valid input records that differ from each other.
	Records func(n int) []models.Record
	// Answers reports whether out is the model's answer to in (for
	// instance: it carries in's id). The suite uses it to check order.
	Answers func(in, out models.Record) bool
	// Bad is a batch the model cannot read (a record without a field it
	// needs); its error must contain every one of BadWords.
	Bad      []models.Record
	BadWords []string
	// Deterministic says that the same batch always gets the same
	// answer, so that concurrent calls can be compared with serial ones.
	Deterministic bool
}

// Run runs the suite against c.
func Run(t *testing.T, c Case) {
	t.Helper()
	m := c.New(t)
	t.Run("one output per input", func(t *testing.T) {
		for _, n := range []int{1, 7, 32} {
			in := c.Records(n)
			out, err := m.Predict(context.Background(), in)
			if err != nil {
				t.Fatalf("%d records: %v", n, err)
			}
			if len(out) != n {
				t.Fatalf("%d records in, %d out", n, len(out))
			}
			for i, o := range out {
				if o == nil {
					t.Fatalf("%d records: output %d is nil", n, i)
				}
			}
		}
	})
	t.Run("order", func(t *testing.T) {
		in := c.Records(16)
		rev := slices.Clone(in)
		slices.Reverse(rev)
		for name, batch := range map[string][]models.Record{"as given": in, "reversed": rev} {
			out, err := m.Predict(context.Background(), batch)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i := range batch {
				if i >= len(out) || !c.Answers(batch[i], out[i]) {
					t.Fatalf("%s: output %d does not answer input %d: in %v, out %v", name, i, i, short(batch[i]), short(at(out, i)))
				}
			}
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		out, err := m.Predict(context.Background(), []models.Record{})
		if err != nil || len(out) != 0 {
			t.Fatalf("empty batch: %d records, %v; want none and no error", len(out), err)
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		const goroutines, calls = 8, 4
		batches := make([][]models.Record, goroutines)
		want := make([][]models.Record, goroutines)
		for g := range batches {
			batches[g] = c.Records(4 + g)
			if c.Deterministic {
				var err error
				if want[g], err = m.Predict(context.Background(), batches[g]); err != nil {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*calls)
		for g := range batches {
			wg.Go(func() {
				for range calls {
					out, err := m.Predict(context.Background(), batches[g])
					switch {
					case err != nil:
						errs <- err
					case len(out) != len(batches[g]):
						errs <- fmt.Errorf("batch %d: %d records out for %d", g, len(out), len(batches[g]))
					case c.Deterministic && !reflect.DeepEqual(out, want[g]):
						errs <- fmt.Errorf("batch %d: a concurrent call answered differently from a serial one", g)
					default:
						for i := range out {
							if !c.Answers(batches[g][i], out[i]) {
								errs <- fmt.Errorf("batch %d: output %d answers another record", g, i)
								break
							}
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, err := m.Predict(ctx, c.Records(8))
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a call with a cancelled context took %s", d)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("a call with a cancelled context failed with %v, which does not wrap context.Canceled", err)
		}
		// Wrapped as a workflow wraps it, the call ends with the context.
		w := middleware.Chain(m, middleware.Timeout("m", time.Minute), middleware.Recover("m"))
		if _, err := w.Predict(ctx, c.Records(8)); !errors.Is(err, context.Canceled) {
			t.Errorf("wrapped: %v, want context.Canceled", err)
		}
	})
	t.Run("bad batch", func(t *testing.T) {
		if c.Bad == nil {
			t.Skip("the case gives no batch the model cannot read")
		}
		w := middleware.Chain(m, middleware.Recover("m"))
		_, err := w.Predict(context.Background(), c.Bad)
		if err == nil {
			t.Fatalf("a batch the model cannot read was answered")
		}
		if strings.Contains(err.Error(), "panicked") {
			t.Fatalf("the model panicked on a bad batch instead of returning an error: %v", err)
		}
		for _, w := range c.BadWords {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	})
}

func at(out []models.Record, i int) models.Record {
	if i < len(out) {
		return out[i]
	}
	return nil
}

// short prints a record without long arrays.
func short(r models.Record) string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r {
			if !yield(k) {
				return
			}
		}
	}) {
		v := r[k]
		if l, ok := v.([]any); ok && len(l) > 4 {
			v = fmt.Sprintf("[%d values]", len(l))
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
