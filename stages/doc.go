// Package stages runs workflow steps: one Stage is one consumer of one step.
//
// A Stage reads its step's input topic and retry topic in the consumer group
// "<workflow>.<step>" and walks every Kafka record (one batch) down the data
// path, top to bottom:
//
//	consume → decode → rank → invoke → assert → route → trace
//
// Decode reads the Avro single-object batch; bytes that do not decode, or
// that carry an unknown schema fingerprint, go to the step's DLQ with the
// reason in the flexiflow-error header. Rank asks the step's bandit policy
// for an order; the best model not yet tried on this batch at this step gets
// it. Invoke runs the model under its timeout: an error, a panic, a timeout,
// a wrong number of records or output that does not fit the output schema is
// a failed attempt with its reason. Assert runs the step's CEL assertions.
// Route sends a pass to the next step's input (or the workflow's output), a
// failure with models left to the retry topic with the tried list extended,
// and a failure with none left to the DLQ. Trace writes one record per
// attempt to <workflow>.traces.
//
// Everything one poll of records causes (routed batches, traces, consumed
// offsets) is committed in one Kafka transaction, so a crash neither loses
// nor duplicates a batch.
//
// Batches start down the data path as soon as the Kafka client has fetched
// them, on WithWorkers goroutines, while the previous transaction is still
// committing; the transaction that polls a batch takes its result, in poll
// order, and produces it. A batch whose partition is revoked before it is
// polled is dropped, and its new owner processes it again.
//
// Compile turns a workflow into compiled Steps (codecs, models, assertions);
// NewStage wraps a Step with a policy and a Kafka connection.
package stages
