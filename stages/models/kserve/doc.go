// Package kserve calls models served by any Open Inference Protocol
// ("KServe V2") server — KServe, Triton, MLServer, Seldon, OpenVINO Model
// Server — over REST or gRPC, as a FlexiFlow models.Model.
//
// Data in: every record of a batch becomes one row of each input tensor.
// An Input names the tensor, its datatype (FP64 by default; FP32, INT32,
// INT64) and the record fields whose values (numbers or arrays of numbers)
// are concatenated into the row; the tensor's shape is [records, row
// length]. REST sends JSON tensors; gRPC sends typed contents, or raw
// little-endian bytes (raw_input_contents) when Binary is set.
//
// Data out: the adapter asks for exactly the output tensors its Outputs
// name. Each Output writes one field of every output record from row i of
// its tensor: the value itself (shape [N] or [N,1]), the row's max (e.g. the
// top class probability from predict_proba [N,K]), its argmax (the class
// index) or the whole row. Integer tensors become Avro longs/ints (Go
// int64), floating ones doubles, BYTES strings. Carry copies input fields
// (ids, labels) unchanged. A missing tensor, a shape that does not give one
// row per record, or a value count that does not match the shape is an
// error that names the tensor, the shape received and the shape wanted.
//
// Per model: calls in flight are capped (MaxConcurrency); transport
// failures only (connection refused or reset, HTTP 502/503/504, gRPC
// UNAVAILABLE) are retried with exponential backoff — an answer, even an
// HTTP 500 or one that fails the step's assertions, is never retried; a
// circuit breaker opens after BreakerFailures consecutive failed calls and
// fails calls at once with "circuit open: model down since …, retrying
// after …" until BreakerCooldown has passed, so the step's bandit sees the
// failures and ranks the model down; then one call probes the server. The
// model's cost for the bandit is its measured latency, or PriceMS per call
// when configured (PriceMS reports it).
//
// Credentials come only from the environment (TokenEnv) or files
// (TokenFile, CAFile); they are never logged.
package kserve
