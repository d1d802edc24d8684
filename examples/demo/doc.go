// Package demo is FlexiFlow's built-in demonstration: a two-step workflow
// (denoise → classify) over real handwritten digits, real models trained in
// process, and an input stream whose corruption grows over time so that a
// different model is best in each phase.
//
// Run drives the whole thing on one Kafka cluster (the embedded broker by
// default): it creates the topics, starts one stage per step, produces the
// drifting stream, shows live progress, and collects the traces, outputs and
// dead letters into a summary.Report.
//
// Data enters as the embedded digits data set (package digits) and leaves
// through the workflow's topics; the report is read back from them.
package demo
