// Package middleware wraps any models.Model with the behaviour a workflow
// file asks of every model, whatever its kind: a timeout, panic recovery,
// a concurrency cap, retries of errors the kind marks retryable, a circuit
// breaker and a fixed price. Each wrapper is one file and one function
// returning a Middleware; Chain applies them in order.
//
// A batch enters as the []models.Record a stage hands its model and
// leaves as the model's answer or an error that says which wrapper
// refused or gave up, and why. Wrappers never change an answer.
package middleware
