// Package sim replays a workflow whose models' pass probabilities and
// runtimes change over time, to measure how much a ranking policy pays per
// delivered batch compared with baselines and with an oracle that knows the
// truth at every moment (flexiflow bench bandit).
//
// Data enters as a Scenario (YAML or JSON, the format below) and leaves as a
// Result per policy and seed, summarised into a Report:
//
//	name: abrupt-swap
//	batches: 20000                 # batches entering the first step
//	steps:                         # in workflow order
//	  - name: classify
//	    models:
//	      - name: small
//	        latency_ms: [[0, 5]]   # knots [batch index, mean ms]; linear between, flat beyond
//	        latency_sigma: 0.3     # lognormal spread around the mean (default 0.25)
//	        pass: [[0, 0.92], [9999, 0.92], [10000, 0.35]]
//	    downstream:                # next step's pass probabilities × 0.8 when `small` served
//	      small: 0.8
//
// A batch walks the steps in order; at each step the policy's ranking is
// tried as a cascade until a model passes. A batch no model of a step passes
// is dead-lettered there. The cost of a batch is the sum of the latencies of
// all its attempts in all steps. Outcomes are drawn from a hash of (seed,
// batch, step, model), so every policy meets the same luck: differences
// between policies are the policies'.
package sim
