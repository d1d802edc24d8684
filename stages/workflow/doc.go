// Package workflow reads and validates workflow files.
//
// A workflow file is YAML. It names the workflow, the Avro record schema of
// its input, and its ordered steps; each step lists its alternative models,
// its assertions and its bandit policy. Topic names are derived from the
// workflow and step names unless the file overrides them:
//
//	<workflow>.<step>.in     a step's input; step k's output is step k+1's .in
//	<workflow>.<step>.retry  failed batches waiting for the next-ranked model
//	<workflow>.<step>.dlq    batches no model could pass, or that do not decode
//	<workflow>.out           the last step's output
//	<workflow>.traces        one trace per attempt
//
// Data enters as a file path and leaves as a *Workflow whose defaults are
// filled in and whose structure is checked. Every error names the file and
// line and says what to change. Expressions (CEL) and model names are checked
// by the packages that compile them, which use Workflow.Errorf to point at
// the same file and line.
package workflow
