// Package bandit ranks the alternative models of one workflow step.
//
// A step tries its models as a cascade: the first-ranked model gets a batch;
// if the batch fails the step's assertions, the next-ranked model not yet
// tried gets it, and so on. With pass probability p_i and cost c_i the
// expected cost of an order is c_1 + (1-p_1)c_2 + (1-p_1)(1-p_2)c_3 + …,
// which is minimised by sorting on c_i/p_i. Neither p nor c is known and
// both drift, so a Policy learns them online from Observe calls and returns
// a ranking from Rank.
//
// Data enters as observations (model index, passed, cost in milliseconds)
// and leaves as rankings (model indices, best first) and Estimates (the
// policy's current mean view of each model, for traces and switch history).
//
// A Policy serves one step and is not safe for concurrent use; the stage
// that owns it serialises calls. Policies are deterministic given their
// seed.
package bandit
