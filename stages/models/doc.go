// Package models defines what a workflow step calls to turn a batch of input
// records into a batch of output records, and the registry that builds models
// from a workflow file's model entries.
//
// Data enters as the decoded records of one batch ([]Record, Avro native form:
// map[string]any with Go types int32/int64/float64/string/[]any/...) and
// leaves as one output record per input record, in the same order. A model
// that cannot answer returns an error; the stage turns that, a panic, or a
// timeout into a failed attempt, so a model never needs to recover on its own.
//
// Models are looked up by kind and name in a Registry. There are no package
// globals: the command line builds a Registry, registers the built-in models
// it ships, and passes the Registry to the stages.
package models
