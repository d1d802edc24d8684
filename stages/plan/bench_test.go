package plan

import (
	"testing"
)

// threeSteps is a profile shaped like examples/planner.yaml.
func threeSteps() *Profile {
	mk := func(name string, a, b ModelProfile) StepProfile {
		return StepProfile{Name: name, Models: []ModelProfile{a, b}, Cascade: []string{a.Name, b.Name},
			FirstChoice: map[string]float64{a.Name: 0.9, b.Name: 0.1}, Feedback: name != "verify"}
	}
	jit := func(m ModelProfile, ms float64) ModelProfile {
		m.LatencyMs = NewDist([]float64{ms * 0.8, ms * 0.9, ms, ms * 1.1, ms * 1.2})
		return m
	}
	return &Profile{Workflow: "planner", RecordsPerBatch: 32,
		Broker: Broker{CommitMs: NewDist([]float64{3, 4, 5, 6, 9}), FetchMs: NewDist([]float64{1, 1.5, 2, 3}), ProduceMs: Const(1)},
		Steps: []StepProfile{
			mk("parse", jit(sleeper("parse-fast", 10, 0.8), 10), jit(sleeper("parse-careful", 40, 0.99), 40)),
			mk("score", jit(sleeper("score-small", 30, 0.7), 30), jit(sleeper("score-large", 80, 0.98), 80)),
			mk("verify", jit(sleeper("verify-quick", 5, 0.9), 5), jit(sleeper("verify-thorough", 20, 1), 20)),
		}}
}

// BenchmarkSimulator reports simulated batches per second of wall time
// (the target is at least 100,000) for a three-step workflow.
func BenchmarkSimulator(b *testing.B) {
	p := threeSteps()
	s, err := NewSimulator(p, Workload{Batches: 2000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	c := Config{Partitions: 6, Steps: []StepConfig{{Consumers: 2, Workers: 16, MaxPoll: 32}, {Consumers: 3, Workers: 32, MaxPoll: 32}, {Consumers: 1, Workers: 8, MaxPoll: 64}}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Run(c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*2000/b.Elapsed().Seconds(), "simulated-batches/s")
}
