package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
)

func panicking(v any) models.Model {
	return models.Func(func(context.Context, []models.Record) ([]models.Record, error) { panic(v) })
}

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	for name, tc := range map[string]struct {
		value any
		want  string
	}{
		"string": {"boom", `model "x" panicked: boom`},
		"error":  {errors.New("index out of range"), `model "x" panicked: index out of range`},
		"int":    {42, `model "x" panicked: 42`},
		// Since Go 1.21, panic(nil) is a *runtime.PanicNilError, so it is
		// recovered like any other panic.
		"nil": {nil, `model "x" panicked: panic called with nil argument`},
	} {
		t.Run(name, func(t *testing.T) {
			w := middleware.Chain(panicking(tc.value), middleware.Recover("x"))
			var out []models.Record
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("a panic escaped: %v", p)
					}
				}()
				out, err = w.Predict(context.Background(), records(1))
			}()
			if out != nil {
				t.Errorf("answer %v with a panic, want none", out)
			}
			if err == nil {
				t.Fatal("no error from a panicking model")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want+"\n") {
				t.Errorf("error %q does not begin with %q and a newline", firstLine(msg), tc.want)
			}
			// Some of the stack: the goroutine header, the panic, and the
			// frame that panicked (panicking, in this file).
			for _, s := range []string{"goroutine ", "panic(", "recover_test.go:"} {
				if !strings.Contains(msg, s) {
					t.Errorf("error's stack lacks %q:\n%s", s, msg)
				}
			}
			var me *middleware.Error
			if !errors.As(err, &me) {
				t.Errorf("error %T is not a *middleware.Error", err)
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// deep panics n calls down, so its stack is long.
func deep(n int) {
	if n == 0 {
		panic("deep down")
	}
	deep(n - 1)
}

func TestRecoverKeepsTheStackShort(t *testing.T) {
	m := models.Func(func(context.Context, []models.Record) ([]models.Record, error) {
		deep(200)
		return nil, nil
	})
	_, err := middleware.Chain(m, middleware.Recover("x")).Predict(context.Background(), records(1))
	if err == nil {
		t.Fatal("no error")
	}
	header, stack, _ := strings.Cut(err.Error(), "\n")
	if header != `model "x" panicked: deep down` {
		t.Errorf("header %q", header)
	}
	if !strings.HasSuffix(stack, "…") {
		t.Errorf("a long stack is not cut short with …")
	}
	if n := len(strings.TrimSuffix(stack, "…")); n > 1500 {
		t.Errorf("stack of %d bytes, want at most 1500", n)
	}
}

func TestRecoverPassesThroughWithoutPanic(t *testing.T) {
	in := records(2)
	out, err := middleware.Chain(&stub{}, middleware.Recover("x")).Predict(context.Background(), in)
	if err != nil || len(out) != 2 || &out[0] != &in[0] {
		t.Errorf("got (%v, %v), want the answer unchanged", out, err)
	}
	errModel := errors.New("nope")
	failing := models.Func(func(context.Context, []models.Record) ([]models.Record, error) { return nil, errModel })
	if _, err := middleware.Chain(failing, middleware.Recover("x")).Predict(context.Background(), in); err != errModel {
		t.Errorf("error %v, want the model's own", err)
	}
}

// The wrapper stays usable after a panic.
func TestRecoverAgainAndAgain(t *testing.T) {
	w := middleware.Chain(panicking("again"), middleware.Recover("x"))
	for range 3 {
		if _, err := w.Predict(context.Background(), records(1)); err == nil || !strings.Contains(err.Error(), "panicked: again") {
			t.Fatalf("error %v", err)
		}
	}
}
