package models

import "errors"

// Retryable marks err as worth trying again: the call did not reach an
// answer for a reason that may pass (connection refused or reset, HTTP
// 502/503/504, gRPC UNAVAILABLE). The retry wrapper repeats only calls
// whose error is marked; an answer, even a wrong one, is never repeated.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryable{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked with
// Retryable.
func IsRetryable(err error) bool {
	var r *retryable
	return errors.As(err, &r)
}

type retryable struct{ err error }

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// BadInput marks err as the batch's fault, not the model's (a record that
// does not fit the model's input mapping): the circuit breaker does not
// count it against the model, and it is not retried.
func BadInput(err error) error {
	if err == nil {
		return nil
	}
	return &badInput{err}
}

// IsBadInput reports whether err, or an error it wraps, was marked with
// BadInput.
func IsBadInput(err error) bool {
	var b *badInput
	return errors.As(err, &b)
}

type badInput struct{ err error }

func (e *badInput) Error() string { return e.err.Error() }
func (e *badInput) Unwrap() error { return e.err }
