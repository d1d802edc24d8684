// Package stages runs workflow steps: one Stage is one consumer of one step.
//
// A Stage reads its step's input topic and retry topic in the consumer group
// "<workflow>.<step>" and, for every Kafka record (one batch), walks the data
// path top to bottom:
//
//	consume → decode → rank → invoke → assert → route → trace
//
//   - decode: the Avro single-object batch; bytes that do not decode, or that
//     carry an unknown schema fingerprint, go to the step's DLQ with the
//     reason in the flexiflow-error header;
//   - rank: the step's bandit policy orders the models; the best model not yet
//     tried on this batch at this step gets it;
//   - invoke: the model runs under its timeout; an error, a panic, a timeout,
//     a wrong number of records or output that does not fit the output schema
//     is a failed attempt with its reason;
//   - assert: the step's CEL assertions judge the answer;
//   - route: a pass goes to the next step's input (or the workflow's output),
//     a failure with models left goes to the retry topic with the tried list
//     extended, a failure with none left goes to the DLQ;
//   - trace: one trace per attempt goes to <workflow>.traces.
//
// Everything a record causes (routed batch, trace, consumed offset) is
// committed in one Kafka transaction, so a crash neither loses nor
// duplicates a batch.
//
// Compile turns a workflow into compiled Steps (codecs, models, assertions);
// NewStage wraps a Step with a policy and a Kafka connection.
package stages
