// Package sinks moves what the stages write out of Kafka and into the places
// users look: subpackages each consume a workflow's trace, output and
// dead-letter topics and hand them on.
//
//   - summary: an in-memory collector that turns a run's traces, outputs and
//     dead letters into the per-step report `flexiflow demo` and `flexiflow
//     run` print (and write as JSON).
//   - clickhouse: a consumer group that stores every trace in ClickHouse,
//     the versioned schema, and the drift, switches and trace queries.
//
// Sinks only read. A sink that falls behind or stops never slows a stage:
// traces wait in their topic.
package sinks
