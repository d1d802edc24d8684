package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// flakyInserter stands in for a ClickHouse that is down for the first
// `down` inserts and slow (blocks until the insert's deadline) for the
// next `slow` ones; it remembers every row it accepted.
type flakyInserter struct {
	mu         sync.Mutex
	down, slow int
	calls      int
	rows       map[string]int // attempt id -> times inserted
}

func (f *flakyInserter) Insert(ctx context.Context, rows []Row) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	switch {
	case n <= f.down:
		return errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	case n <= f.down+f.slow:
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rows {
		f.rows[r.AttemptID]++
	}
	return nil
}

func (f *flakyInserter) distinct() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows)
}

// produceTraces writes n traces of workflow wf to topic, then one record
// that is not a trace (the sink skips it; it is not fatal).
func produceTraces(t *testing.T, cfg stream.Config, topic, wf string, n int) {
	t.Helper()
	base := time.Now().Add(-time.Hour).UnixMicro()
	traces := make([]*schemas.Trace, n)
	for i := range traces {
		traces[i] = &schemas.Trace{AttemptID: fmt.Sprintf("b%06d/s/1", i), BatchID: fmt.Sprintf("b%06d", i), Workflow: wf, Step: "s",
			Model: "m", Attempt: 1, TsUs: base + int64(i), LatencyUs: 100, Records: 4, RecordsPassed: 4, Verdict: schemas.VerdictPass,
			Outcome: schemas.OutcomeNext, Leader: "m",
			Features: []schemas.FeatureSummary{{Name: "x", Count: 4, Mean: 1, Variance: 1, Min: 0, Max: 2, Quantiles: []float64{0, 0.5, 1, 1.5, 2}}}}
	}
	writeTraces(t, cfg, topic, traces, []byte("not avro"))
}

// TestSinkSurvivesClickHouseOutages checks that the sink pauses while
// ClickHouse refuses or stalls inserts, resumes when it recovers, loses no
// trace, and commits what it inserted (a restarted sink in the same group
// inserts nothing again).
func TestSinkSurvivesClickHouseOutages(t *testing.T) {
	cases := []struct {
		name       string
		down, slow int
	}{
		{"healthy", 0, 0},
		{"down then up", 5, 0},
		{"slow then fast", 0, 2},
		{"down, slow, up", 3, 2},
	}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Start(t)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					const n = 3000
					wf := streamtest.Unique("sinktest")
					topic := wf + ".traces"
					produceTraces(t, cfg, topic, wf, n)
					ins := &flakyInserter{down: c.down, slow: c.slow, rows: map[string]int{}}
					opts := SinkOptions{Topic: topic, BatchRows: 500, FlushInterval: 100 * time.Millisecond,
						MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, InsertTimeout: 150 * time.Millisecond}
					s, err := NewSink(cfg, ins, opts)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- s.Run(ctx) }()
					sawPaused := false
					deadline := time.Now().Add(time.Minute)
					for (ins.distinct() < n || s.Stats().Skipped < 1) && time.Now().Before(deadline) {
						sawPaused = sawPaused || s.Stats().Paused
						time.Sleep(2 * time.Millisecond)
					}
					cancel()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					st := s.Stats()
					if ins.distinct() != n {
						t.Fatalf("%d of %d traces reached ClickHouse; stats %+v", ins.distinct(), n, st)
					}
					if c.down+c.slow > 0 && (!sawPaused || st.Failures < int64(c.down+c.slow)) {
						t.Errorf("outage not handled as expected: paused seen %v, failures %d (want ≥ %d)", sawPaused, st.Failures, c.down+c.slow)
					}
					if st.Paused || st.Skipped != 1 || st.Pending != 0 {
						t.Errorf("after recovery: %+v (want not paused, 1 skipped non-trace, nothing pending)", st)
					}
					// Restarted in the same group: everything was committed.
					again := &flakyInserter{rows: map[string]int{}}
					s2, _ := NewSink(cfg, again, opts)
					ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
					defer cancel2()
					if err := s2.Run(ctx2); err != nil {
						t.Fatal(err)
					}
					if again.distinct() != 0 {
						t.Errorf("a restarted sink inserted %d traces again: offsets were not committed", again.distinct())
					}
				})
			}
		})
	}
}

// TestRowsFromTraces checks the trace → row conversion on a full trace.
func TestRowsFromTraces(t *testing.T) {
	tr := &schemas.Trace{AttemptID: "b1/s/2", BatchID: "b1", Workflow: "w", Step: "s", Model: "m2", RankPosition: 1, Attempt: 2,
		Tried: []string{"m1"}, TsUs: 1763892000123456, LatencyUs: 1500, Records: 32, RecordsPassed: 30, Verdict: "pass", Outcome: "next", Leader: "m1",
		Assertions: []schemas.AssertionCount{{Name: "a", Failed: 2}},
		Estimates:  []schemas.Estimate{{Model: "m1", PassProb: 0.9, CostMs: 1, Score: 1.11, Pulls: 10}},
		Features:   []schemas.FeatureSummary{{Name: "x", Count: 32, Mean: 1, Variance: 2, Min: -1, Max: 3, Quantiles: []float64{-1, 0, 1, 2, 3}}}}
	r := FromTrace(tr)
	if r.Ts.UnixMicro() != tr.TsUs || r.Attempt != 2 || r.RankPosition != 1 || r.AssertionFailed[0] != 2 || r.EstimateScore[0] != 1.11 ||
		r.FeatureQuantiles[0][4] != 3 || r.Tried[0] != "m1" {
		t.Errorf("row %+v", r)
	}
	b, err := AppendJSONEachRow(nil, []Row{r})
	if err != nil {
		t.Fatal(err)
	}
	want := `"ts":"2025-11-23 10:00:00.123456"`
	if !strings.Contains(string(b), want) {
		t.Errorf("JSONEachRow %s lacks %s", b, want)
	}
	if got := len(Columns); got != 31 {
		t.Errorf("%d columns", got)
	}
}

// BenchmarkFromTrace converts one demo-shaped trace, the sink's per-row work
// besides decoding.
func BenchmarkFromTrace(b *testing.B) {
	tr := demoShapedTraces("w", 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = FromTrace(tr)
	}
}
