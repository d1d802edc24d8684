package throughput

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestRunMeasuresEveryVariant runs a small benchmark on each backend and
// checks that every variant moved every batch and produced figures; the
// figures themselves are for people (flexiflow bench throughput), not
// asserted here.
func TestRunMeasuresEveryVariant(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			rep, err := Run(context.Background(), Options{Kafka: b.Start(t), Batches: 60, BatchSize: 10, RecordBytes: 64, Partitions: 2, Consumers: 1, Rounds: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Variants) != 3 {
				t.Fatalf("want 3 variants, got %d", len(rep.Variants))
			}
			for _, v := range rep.Variants {
				if v.Batches != 60 || !(v.BatchesPerSecond > 0) || !(v.LatencyP99Ms >= v.LatencyP50Ms) || v.LatencyP50Ms <= 0 {
					t.Errorf("%s: implausible figures %+v", v.Name, v)
				}
				if !(v.BatchesPerTxn >= 1) {
					t.Errorf("%s: %v batches per transaction; every transaction carries at least one", v.Name, v.BatchesPerTxn)
				}
			}
			if !(rep.Ratio > 0) {
				t.Errorf("ratio %v", rep.Ratio)
			}
			// Two latency rounds, one p99 difference each; the median of
			// two is the upper one.
			if d := rep.AddedP99MsRounds; len(d) != 2 || rep.AddedP99Ms != max(d[0], d[1]) {
				t.Errorf("added p99 %v from rounds %v", rep.AddedP99Ms, d)
			}
		})
	}
}

func TestRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{Batches: 0, BatchSize: 1, Partitions: 1, Consumers: 1}); err == nil {
		t.Error("zero batches accepted")
	}
	if _, err := Run(context.Background(), Options{Batches: 1, BatchSize: 1, Partitions: 1, Consumers: 1, Variants: []string{"warp"}}); err == nil {
		t.Error("unknown variant accepted")
	}
}

// --profile writes, per variant, a CPU and an allocation profile, and with
// --trace an execution trace.
func TestProfileAndTraceFiles(t *testing.T) {
	b := streamtest.Backends(t)[0]
	dir := t.TempDir()
	_, err := Run(context.Background(), Options{Kafka: b.Start(t), Batches: 20, BatchSize: 5, RecordBytes: 16,
		Partitions: 1, Consumers: 1, Variants: []string{"stage-noop"}, NoLatency: true, Workers: 1, ProfileDir: dir, Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu-stage-noop.pprof", "allocs-stage-noop.pprof", "trace-stage-noop.out"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (want a non-empty file)", name, err)
		}
	}
}
