// Package stream is FlexiFlow's Kafka plumbing: connecting clients, the
// embedded broker, creating topics, and the headers every message carries.
//
// Nothing in here knows what a workflow step does. Bytes enter and leave as
// *kgo.Record values; the stages package decides what they mean.
//
// Every message FlexiFlow produces carries these headers, so tools can route
// and inspect batches without decoding them:
//
//	flexiflow-batch-id  the batch's id, stable across steps, retries and DLQ
//	flexiflow-attempt   attempts made on the batch at the step that wrote it
//	flexiflow-tried     comma-separated models tried at that step, in order
//	flexiflow-error     on dead letters only: why, in words
//
// With no brokers configured FlexiFlow starts an embedded broker (franz-go's
// kfake, a Kafka-protocol broker in plain Go) so a whole workflow runs with
// no services.
package stream
