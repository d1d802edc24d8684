// Package edge is where a workflow's events enter and leave: Ingest reads
// single events from the workflow's source topic, checks them against
// input_schema and batches them for the first step; Egress turns each
// delivered batch into one record per event on the sink topic, keyed and
// with headers as the event came. Both run as a relay (stages/relay):
// what they write commits with the offsets they consumed.
//
// Events enter as Kafka records of the user's format (json or avro) and
// leave as batches on the first step's .in topic, or as dead letters on
// the source DLQ with the reason; delivered batches leave as one record
// per event on the sink topic.
package edge
