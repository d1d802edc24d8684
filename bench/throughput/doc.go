// Package throughput measures how close a FlexiFlow stage gets to the broker's
// own limit (flexiflow bench throughput). On one broker and one topic
// layout it runs, in turn:
//
//   - raw: a transactional consume → produce loop that copies batches
//     without decoding them, the most a stream processor could do;
//   - stage-noop: a FlexiFlow stage whose model returns its input and whose
//     one assertion is trivial, so what is left is FlexiFlow itself: decode,
//     rank, assert, encode, route and trace every batch;
//   - stage-demo: the demo workflow's first step with its real models.
//
// Each variant first drains a preloaded backlog as fast as it can
// (throughput, CPU), then meets a paced stream at half that rate (end-to-end
// latency from produce to the output topic). Data enters as generated
// batches and leaves as a Report; ratio is stage-noop's throughput over
// raw's.
package throughput
