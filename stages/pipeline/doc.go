// Package pipeline runs every step of a workflow in one process: one Stage
// per step (or several replicas, each its own consumer-group member), with
// their topics created first. It is what `flexiflow run` and `flexiflow demo`
// use; `flexiflow stage` runs a single Stage instead.
//
// Data enters and leaves through Kafka: the pipeline only starts, watches
// and stops stages.
package pipeline
