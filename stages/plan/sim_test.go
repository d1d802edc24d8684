package plan

import (
	"math"
	"strings"
	"testing"
)

// oneStep is a profile of a workflow of one step whose models have
// constant latencies and the given pass probabilities, tried in order.
func oneStep(commitMs float64, models ...ModelProfile) *Profile {
	sp := StepProfile{Name: "s", FirstChoice: map[string]float64{models[0].Name: 1}}
	for _, m := range models {
		sp.Models = append(sp.Models, m)
		sp.Cascade = append(sp.Cascade, m.Name)
	}
	return &Profile{Workflow: "w", RecordsPerBatch: 1, Steps: []StepProfile{sp},
		Broker: Broker{CommitMs: Const(commitMs), FetchMs: Const(1), ProduceMs: Const(1)}}
}

func sleeper(name string, ms, pass float64) ModelProfile {
	return ModelProfile{Name: name, Kind: "sim.sleep", Wait: true, LatencyMs: Const(ms), Pass: pass, MeanRecords: 1}
}

func run(t *testing.T, p *Profile, w Workload, c Config) Prediction {
	t.Helper()
	s, err := NewSimulator(p, w)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := s.Run(c)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*want {
		t.Errorf("%s: got %.4g, want %.4g ± %.0f%%", what, got, want, tol*100)
	}
}

// TestWorkerBound: with quick commits, a step's throughput is its
// workers over its model's latency.
func TestWorkerBound(t *testing.T) {
	p := oneStep(0.5, sleeper("m", 10, 1))
	pr := run(t, p, Workload{Batches: 2000}, Config{Partitions: 1, Steps: []StepConfig{{Consumers: 1, Workers: 4, MaxPoll: 32}}})
	near(t, "batches/s", pr.BatchesPerS, 400, 0.03)
	if pr.Steps[0].Limit != "workers" || pr.Bottleneck != "s" {
		t.Errorf("limit %s, bottleneck %s; want workers on s", pr.Steps[0].Limit, pr.Bottleneck)
	}
	// A backlog of 2000 at 400/s: the median batch waits about 2.5 s.
	near(t, "p50", pr.P50Ms, 2500, 0.05)
}

// TestCommitBound: with many workers and quick models, a consumer
// commits at most max_poll batches per commit time.
func TestCommitBound(t *testing.T) {
	p := oneStep(10, sleeper("m", 0.1, 1))
	pr := run(t, p, Workload{Batches: 2000}, Config{Partitions: 1, Steps: []StepConfig{{Consumers: 1, Workers: 64, MaxPoll: 4}}})
	near(t, "batches/s", pr.BatchesPerS, 400, 0.05)
	if pr.Steps[0].Limit != "transactions" {
		t.Errorf("limit %s, want transactions", pr.Steps[0].Limit)
	}
	near(t, "batches per transaction", pr.Steps[0].BatchesPerTxn, 4, 0.01)
}

// TestRetries: a batch the first model fails is tried on the second, so
// the step does 1 + (1 - pass) attempts per batch and its capacity falls
// accordingly; batches no model passes are dead-lettered.
func TestRetries(t *testing.T) {
	p := oneStep(0.5, sleeper("a", 10, 0.5), sleeper("b", 10, 0.5))
	pr := run(t, p, Workload{Batches: 4000, Seed: 3}, Config{Partitions: 1, Steps: []StepConfig{{Consumers: 1, Workers: 8, MaxPoll: 32}}})
	near(t, "attempts per batch", pr.Steps[0].AttemptsPerBatch, 1.5, 0.001)
	near(t, "dead-lettered share", float64(pr.DeadLettered)/4000, 0.25, 0.1)
	// 8 workers / (1.5 × 10 ms) ≈ 533 attempts-worth of batches per second, of which 3/4 are delivered.
	near(t, "batches/s", pr.BatchesPerS, 8/0.015*0.75, 0.06)
}

// TestPartitionsCapConsumers: consumers beyond the partitions sit idle.
func TestPartitionsCapConsumers(t *testing.T) {
	p := oneStep(0.5, sleeper("m", 10, 1))
	two := run(t, p, Workload{Batches: 2000}, Config{Partitions: 2, Steps: []StepConfig{{Consumers: 4, Workers: 2, MaxPoll: 32}}})
	if two.Steps[0].Consumers != 2 {
		t.Errorf("%d consumers own partitions, want 2", two.Steps[0].Consumers)
	}
	near(t, "batches/s", two.BatchesPerS, 400, 0.08)
}

// TestServerCapacity: a model server that serves 2 calls at once holds a
// step to 2 calls per latency, whatever its consumers' workers.
func TestServerCapacity(t *testing.T) {
	m := sleeper("m", 10, 1)
	m.Capacity = 2
	p := oneStep(0.5, m)
	// Enough batches that the first commits, which deliver several at
	// once, do not count.
	pr := run(t, p, Workload{Batches: 5000}, Config{Partitions: 4, Steps: []StepConfig{{Consumers: 4, Workers: 8, MaxPoll: 32}}})
	near(t, "batches/s", pr.BatchesPerS, 200, 0.05)
}

// TestRateKeepsUp: below capacity, the pipeline delivers at the arrival
// rate and a batch's latency is its own path, not a queue.
func TestRateKeepsUp(t *testing.T) {
	p := oneStep(2, sleeper("m", 10, 1))
	pr := run(t, p, Workload{Batches: 1000, Rate: 50}, Config{Partitions: 1, Steps: []StepConfig{{Consumers: 1, Workers: 4, MaxPoll: 32}}})
	near(t, "batches/s", pr.BatchesPerS, 50, 0.02)
	// fetch 1 + model 10 + commit 2 + fetch 1
	near(t, "p50", pr.P50Ms, 14, 0.05)
	if pr.Bottleneck != "input" {
		t.Errorf("bottleneck %s, want input", pr.Bottleneck)
	}
}

// TestDeterministic: the same seed gives the same prediction.
func TestDeterministic(t *testing.T) {
	m := sleeper("m", 10, 0.7)
	m.LatencyMs = NewDist([]float64{5, 8, 10, 12, 40})
	p := oneStep(3, m, sleeper("n", 20, 0.9))
	c := Config{Partitions: 3, Steps: []StepConfig{{Consumers: 2, Workers: 3, MaxPoll: 8}}}
	s, err := NewSimulator(p, Workload{Batches: 500, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Run(c)
	b, _ := s.Run(c)
	if a.BatchesPerS != b.BatchesPerS || a.P99Ms != b.P99Ms {
		t.Errorf("two runs differ: %+v and %+v", a, b)
	}
}

// TestIngestBatches: events arriving at a workflow's source become
// batches of max_records events or whatever linger collected.
func TestIngestBatches(t *testing.T) {
	p := oneStep(2, sleeper("m", 5, 1))
	p.Ingest = &IngestProfile{Topic: "events", MaxRecords: 10, LingerMs: 50}
	s, err := NewSimulator(p, Workload{Batches: 400, EventRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 100 events/s fill 10 in 100 ms, so linger closes each batch at 50 ms with 5.
	if w := s.Workload(); w.Rate != 20 || w.RecordsPerBatch != 5 {
		t.Errorf("batches at %g/s of %g records, want 20/s of 5", w.Rate, w.RecordsPerBatch)
	}
	pr, err := s.Run(Config{Partitions: 1, Steps: []StepConfig{{Consumers: 1, Workers: 2, MaxPoll: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "batches/s", pr.BatchesPerS, 20, 0.02)
	// linger 50 + source commit 2 + fetch 1, then fetch 1 + model 5 + commit 2 + fetch 1
	near(t, "p50", pr.P50Ms, 62, 0.05)
}

// TestStageCPU: the stage's own work per attempt takes a core, so a
// consumer with one core passes on at most one attempt per that much CPU,
// however many workers wait on its models; consumers sharing one process's
// cores share that bound.
func TestStageCPU(t *testing.T) {
	p := oneStep(0.5, sleeper("m", 0.1, 1))
	p.StageCPUMs = 1
	own := run(t, p, Workload{Batches: 3000}, Config{Partitions: 2, Steps: []StepConfig{{Consumers: 2, Workers: 32, MaxPoll: 64}}})
	near(t, "batches/s on a core each", own.BatchesPerS, 2000, 0.05)
	if own.Steps[0].Limit != "cpu" || own.Steps[0].CPUShare < 0.9 {
		t.Errorf("limit %s, cores busy %.2f; want cpu, above 0.9", own.Steps[0].Limit, own.Steps[0].CPUShare)
	}
	shared := run(t, p, Workload{Batches: 3000, SharedCores: 1}, Config{Partitions: 2, Steps: []StepConfig{{Consumers: 2, Workers: 32, MaxPoll: 64}}})
	near(t, "batches/s sharing one core", shared.BatchesPerS, 1000, 0.05)
}

// TestBrokerCPU: the broker's work on a stage's transactions takes cores
// too: on the cores it shares with the stages, or on its own. Each
// transaction of at most 8 batches costs the broker 10 ms of a core, so one
// core passes on at most 800 batches/s and two cores 1600, however fast
// the models; a profile without the broker's CPU is not held back.
func TestBrokerCPU(t *testing.T) {
	p := oneStep(0.5, sleeper("m", 0.1, 1))
	cfg := Config{Partitions: 4, Steps: []StepConfig{{Consumers: 4, Workers: 32, MaxPoll: 8}}}
	free := run(t, p, Workload{Batches: 6000, SharedCores: 1}, cfg)
	if free.BatchesPerS < 3000 || free.BrokerCPUShare != 0 {
		t.Fatalf("without the broker's CPU: %.0f batches/s, broker share %.2f; want above 3000 and 0", free.BatchesPerS, free.BrokerCPUShare)
	}
	p.Broker.CPU = &BrokerCPU{TxnMs: 10, Cores: 1}
	shared := run(t, p, Workload{Batches: 6000, SharedCores: 1}, cfg)
	near(t, "batches/s, the broker on the stages' core", shared.BatchesPerS, 800, 0.05)
	if shared.Bottleneck != "cpu" || shared.BrokerCPUShare < 0.9 {
		t.Errorf("bottleneck %s, broker share %.2f; want cpu, above 0.9", shared.Bottleneck, shared.BrokerCPUShare)
	}
	if e := Explain(p, cfg, shared, nil, nil); !strings.Contains(e, "share with the broker limit the pipeline") {
		t.Errorf("the explanation does not name the shared cores:\n%s", e)
	}
	own := run(t, p, Workload{Batches: 6000, BrokerCores: 2}, cfg)
	near(t, "batches/s, the broker on two cores of its own", own.BatchesPerS, 1600, 0.05)
	if own.Bottleneck != "broker" {
		t.Errorf("bottleneck %s; want broker", own.Bottleneck)
	}
	if e := Explain(p, cfg, own, nil, nil); !strings.Contains(e, "The broker's cores limit the pipeline") {
		t.Errorf("the explanation does not name the broker:\n%s", e)
	}
	// A produce request costs the broker 1 ms, but a loaded broker
	// returns requests late and the records produced meanwhile share the
	// next one: far more than 1000 batches/s pass a core.
	p.Broker.CPU = &BrokerCPU{RequestMs: 1, Cores: 1}
	big := Config{Partitions: 4, Steps: []StepConfig{{Consumers: 4, Workers: 32, MaxPoll: 64}}}
	batched := run(t, p, Workload{Batches: 6000, SharedCores: 1}, big)
	if batched.BatchesPerS < 2000 || batched.BrokerCPUShare < 0.2 {
		t.Errorf("a request costing 1 ms: %.0f batches/s, broker share %.2f; want above 2000 (requests carry many records), share above 0.2",
			batched.BatchesPerS, batched.BrokerCPUShare)
	}
	p.Broker.CPU = &BrokerCPU{TxnMs: 10, Cores: 1}
	// A request that writes to partitions new to its transaction costs
	// their addition as well.
	p.Broker.CPU.AddMs = 0.5
	adds := run(t, p, Workload{Batches: 6000, BrokerCores: 2}, cfg)
	if adds.BatchesPerS >= own.BatchesPerS {
		t.Errorf("with a cost per partition added, %.0f batches/s; want under %.0f", adds.BatchesPerS, own.BatchesPerS)
	}
}
