// Package schemas holds FlexiFlow's Avro schemas and turns bytes on a topic
// into batches and back.
//
// The .avsc files in this directory are embedded into the binary:
//
//   - envelope.avsc: the batch envelope (batch id, workflow, step, attempt,
//     models tried, created-at, records). Its records field is filled in with
//     a record schema, so every record type gets its own batch schema and
//     fingerprint.
//   - trace.avsc: one row per attempt, written to <workflow>.traces.
//   - demo/*.avsc: the record types of the demo workflow;
//     bench/*.avsc: those of the throughput benchmark.
//
// Messages use Avro single-object encoding: the two bytes C3 01, the 64-bit
// CRC-64-AVRO (Rabin) fingerprint of the writer's canonical schema, then the
// Avro binary body. A reader can therefore tell a schema it does not know
// (ErrUnknownSchema) from bytes that are not Avro at all
// (ErrNotSingleObject), and a stage routes both to its dead-letter topic.
//
// goavro parses every schema and computes its fingerprint; the bytes are
// read and written by the schema's compiled codec (package avrobin), which
// reads and writes the same Go values with fewer allocations,
// with goavro taking over for values and schemas it leaves to it.
// Traces are written field by field.
//
// Data enters as .avsc text (embedded or from a workflow's own files) and
// leaves as Codecs that encode and decode Batch and Trace values.
package schemas
