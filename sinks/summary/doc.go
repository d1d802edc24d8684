// Package summary collects a workflow run's traces, outputs and dead letters
// from Kafka into a report: per step, the batches it saw, delivered and
// dead-lettered, attempts per batch, each model's share of the batches it
// served in each phase of the input, and every switch of the step's
// top-ranked model with the estimates that caused it.
//
// Data enters from the workflow's topics (read_committed, from the start,
// outside any consumer group) and leaves as a Report, printable as a table or
// JSON.
package summary
