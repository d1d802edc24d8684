// Package assert judges a model's answer for one batch.
//
// A step's assertions are CEL expressions (github.com/google/cel-go),
// compiled once when the stage starts:
//
//   - record assertions are predicates over one input record (`input`) and
//     the model's output record for it (`output`), both maps from field name
//     to value; a record passes when every record assertion is true;
//   - the batch rule passes a batch when at least min_pass_fraction of its
//     records pass and, if given, a CEL predicate over `batch` holds, where
//     batch.size, batch.passed and batch.pass_fraction count records,
//     batch.failed maps each assertion name to its failures, and batch.mean
//     maps each numeric output field to its mean over the batch.
//
// Besides CEL's standard library and the strings, math and lists extensions,
// expressions may call sum(list), mean(list) and roughness(list) (the mean
// absolute difference of consecutive elements: a total-variation measure for
// signals and flattened images).
//
// Data enters as the input and output records of one batch and leaves as a
// Result: records passed, failures per assertion, the verdict and, when the
// batch fails, a reason a person can read.
package assert
