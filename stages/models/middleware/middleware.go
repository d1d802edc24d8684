package middleware

import (
	"fmt"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Middleware wraps a model in added behaviour.
type Middleware func(models.Model) models.Model

// Chain wraps m in mws, the first outermost: Chain(m, a, b) calls a, which
// calls b, which calls m.
func Chain(m models.Model, mws ...Middleware) models.Model {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			m = mws[i](m)
		}
	}
	return m
}

// Unwrapper is implemented by every wrapper of this package.
type Unwrapper interface {
	Unwrap() models.Model
}

// Innermost returns the model inside every wrapper around m.
func Innermost(m models.Model) models.Model {
	for {
		u, ok := m.(Unwrapper)
		if !ok {
			return m
		}
		m = u.Unwrap()
	}
}

// wrapped is the base of every wrapper: it remembers the next model.
type wrapped struct{ next models.Model }

func (w wrapped) Unwrap() models.Model { return w.next }

// Error is a wrapper's own failure (a timeout, a panic, an open circuit, no
// free call slot). Its message names the model, so callers need not.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

func newError(err error, format string, args ...any) *Error {
	return &Error{msg: fmt.Sprintf(format, args...), err: err}
}
