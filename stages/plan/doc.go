// Package plan finds a deployment for a workflow the way FlexFlow finds a
// parallelisation strategy: an execution simulator predicts what a
// configuration does, and a guided randomised search (Metropolis–Hastings,
// one knob changed per proposal) looks for the configuration that does
// best under a budget.
//
// What enters: a Profile, made from the workflow's traces (FromTraces: per
// step and model, the latency distribution and its growth with records
// per batch, the pass probability over time, the retry mix and the
// cascade order the policy settled on) and from the broker's measured
// costs (Calibrate: transaction commit, produce and fetch round trips).
//
// What leaves: a Config (partitions, and per step consumers, workers and
// transactions of at most max_poll batches) with its Prediction
// (sustained batches/s, per-batch latency p50/p99, each step's
// utilisation and the bottleneck), an explanation in words (Explain), and
// the files an operator applies (Apply: flags, a compose override or a
// kustomize patch).
//
// The simulator (Simulator) is a discrete-event model of the runtime in
// package stages: per step, consumers that own partitions of the step's
// input and retry topics; per consumer, workers that start on fetched
// batches at most max_poll ahead of the transaction that takes them; one
// transaction at a time that takes polled batches in order, then flushes
// and commits; records visible downstream only once their transaction
// commits; failed attempts to the retry topic and the next model of the
// cascade, batches no model passed to the dead-letter topic; one feedback
// report per earlier step when a batch ends; model concurrency caps and
// server capacity.
package plan
