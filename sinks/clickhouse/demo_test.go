package clickhouse

import (
	"context"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/sinks/summary"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// Tolerances of the chDB-versus-Go comparisons. Counts, rates, models and
// times must agree exactly (times to the microsecond); the drift
// statistics and mean latencies are sums of floating-point terms in a
// different order, so they may differ in the last bits.
const (
	tolStat    = 1e-9 // PSI, KS, JS, means: absolute
	tolLatency = 1e-6 // milliseconds
)

// readTraces reads every committed trace on topic, straight from Kafka,
// independently of the sink.
func readTraces(t *testing.T, cfg stream.Config, topic string) []*schemas.Trace {
	t.Helper()
	codec, err := schemas.NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*schemas.Trace
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			tr, err := codec.Decode(r.Value)
			if err != nil {
				t.Fatalf("trace at offset %d: %v", r.Offset, err)
			}
			out = append(out, tr)
			n++
		})
		if n == 0 && len(out) > 0 {
			return out
		}
		if n == 0 && ctx.Err() != nil && len(out) == 0 {
			t.Fatalf("no traces on %s", topic)
		}
	}
}

// runSink runs a Sink with opts into ins until it has inserted want rows,
// and returns how long that took from the first poll that delivered
// traces (the consumer group's join is not counted), and its counters.
func runSink(t *testing.T, cfg stream.Config, ins Inserter, opts SinkOptions, want int) (time.Duration, SinkStats) {
	t.Helper()
	s, err := NewSink(cfg, ins, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.After(2 * time.Minute)
	var start time.Time // the first poll that delivered traces
	for st := s.Stats(); st.Inserted < int64(want); st = s.Stats() {
		if start.IsZero() {
			start = st.LastRecord
		}
		select {
		case err := <-done:
			t.Fatalf("sink stopped early: %v", err)
		case <-deadline:
			t.Fatalf("sink inserted %d of %d rows in 2m: %+v", s.Stats().Inserted, want, s.Stats())
		case <-time.After(time.Millisecond):
		}
	}
	end := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Inserted != int64(want) || st.Skipped != 0 {
		t.Fatalf("sink stats %+v, want exactly %d rows inserted", st, want)
	}
	if start.IsZero() {
		start = st.LastRecord
	}
	return end.Sub(start), st
}

// TestShippedSQLOnDemoTraces runs a real demo, moves its traces into chDB
// with the sink's own code, executes every shipped DDL statement and query
// there, and checks each answer against the same figures computed in Go
// from the traces read straight off Kafka.
func TestShippedSQLOnDemoTraces(t *testing.T) {
	ch := startChDB(t)
	ctx := context.Background()

	// Every DDL statement: twice, the second time applying nothing.
	a, err := Migrate(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	if a.From != 0 || a.To != LatestVersion() || len(a.Files) == 0 {
		t.Fatalf("first migrate: %+v", a)
	}
	if a, err = Migrate(ctx, ch); err != nil || len(a.Files) != 0 || a.From != LatestVersion() {
		t.Fatalf("second migrate should apply nothing: %+v, %v", a, err)
	}
	if err := CheckSchema(ctx, ch); err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { demoRoundTrip(t, b.Start(t), ch, ch, ran) })
	}
	for _, q := range QueryNames() {
		if !ran[q] {
			t.Errorf("shipped query %s was not executed by this test", q)
		}
	}
	// A step with `context: upstream` has a leader per upstream model: the
	// switches query keeps those timelines apart, as the summary does.
	t.Run("trap-contexts", func(t *testing.T) {
		cfg := streamtest.Backends(t)[0].Start(t)
		name := streamtest.Unique("trap")
		report, err := demo.Run(ctx, demo.Options{Batches: 400, Name: name, Brokers: cfg.Brokers, Trap: true})
		if err != nil {
			t.Fatal(err)
		}
		topic := name + ".traces"
		traces := readTraces(t, cfg, topic)
		runSink(t, cfg, ch, SinkOptions{Topic: topic, Group: name + ".sink", BatchRows: 2000, FlushInterval: 200 * time.Millisecond}, len(traces))
		checkSwitches(t, ch, name, traces, report.Steps)
		res, err := ch.Query(ctx, "SELECT uniqExact(context) AS n FROM traces FINAL WHERE workflow = {w:String} AND step = 'classify'", map[string]string{"w": name})
		if err != nil {
			t.Fatal(err)
		}
		if n := res.Float(0, "n"); n < 2 {
			t.Errorf("classify ranked under %v contexts in ClickHouse; the trap's denoise serves several models", n)
		}
		for _, s := range report.Steps {
			if s.Name == "classify" && len(s.Contexts) < 2 {
				t.Errorf("the summary lists %d contexts for classify, want one per upstream model that served it", len(s.Contexts))
			}
			if s.Name == "denoise" && len(s.Contexts) != 0 {
				t.Errorf("denoise has no context but the summary lists %+v", s.Contexts)
			}
		}
	})
}

// demoRoundTrip runs a demo on cfg, sinks its traces into ins, and checks
// every shipped query's answers on e against Go's; ran records the queries
// it executed.
func demoRoundTrip(t *testing.T, cfg stream.Config, e Engine, ins Inserter, ran map[string]bool) {
	ctx := context.Background()
	batches := 900
	if s := os.Getenv("FLEXIFLOW_DEMO_BATCHES"); s != "" { // 1200 matches flexiflow demo
		batches, _ = strconv.Atoi(s)
	}
	name := streamtest.Unique("digits")
	report, err := demo.Run(ctx, demo.Options{Batches: batches, Name: name, Brokers: cfg.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	topic := name + ".traces"
	traces := readTraces(t, cfg, topic)
	t.Logf("demo: %d batches, %d traces", batches, len(traces))

	opts := SinkOptions{Topic: topic, Group: name + ".sink", BatchRows: 2000, FlushInterval: 200 * time.Millisecond}
	took, _ := runSink(t, cfg, ins, opts, len(traces))
	t.Logf("sink: %d rows in %s = %.0f rows/s (demo traces, batches of up to 2000 rows)",
		len(traces), took.Round(time.Millisecond), float64(len(traces))/took.Seconds())
	// A replay (another group reads everything again) must leave no duplicates.
	opts.Group = name + ".replay"
	runSink(t, cfg, ins, opts, len(traces))
	count, err := e.Query(ctx, "SELECT count() AS n, uniqExact(attempt_id) AS u FROM traces FINAL WHERE workflow = {w:String}", map[string]string{"w": name})
	if err != nil {
		t.Fatal(err)
	}
	if n, u := count.Float(0, "n"), count.Float(0, "u"); int(n) != len(traces) || int(u) != len(traces) {
		t.Errorf("after a replay: %v rows, %v attempt ids in traces FINAL; want %d", n, u, len(traces))
	}

	checkSteps(t, e, name, traces)
	ran[QuerySteps] = true
	checkDrift(t, e, name, traces, batches)
	ran[QueryDrift], ran[QueryBatchWindow] = true, true
	checkSwitches(t, e, name, traces, report.Steps)
	ran[QuerySwitches] = true
	checkTrace(t, e, name, traces)
	ran[QueryTrace] = true
	checkProfile(t, e, name, traces)
	ran[QueryProfile] = true
	checkViews(t, e, name, traces, 2) // the replay inserted every row a second time
}

func checkSteps(t *testing.T, e Engine, wf string, traces []*schemas.Trace) {
	t.Helper()
	res, err := Run(context.Background(), e, QuerySteps, map[string]string{"workflow": wf})
	if err != nil {
		t.Fatal(err)
	}
	batches, attempts := map[string]map[string]bool{}, map[string]int{}
	for _, tr := range traces {
		if batches[tr.Step] == nil {
			batches[tr.Step] = map[string]bool{}
		}
		batches[tr.Step][tr.BatchID] = true
		attempts[tr.Step]++
	}
	if len(res.Rows) != len(batches) {
		t.Fatalf("steps: %d rows, want %d", len(res.Rows), len(batches))
	}
	for i := range res.Rows {
		s := res.String(i, "step")
		if int(res.Float(i, "batches")) != len(batches[s]) || int(res.Float(i, "attempts")) != attempts[s] {
			t.Errorf("steps: %s has %v batches, %v attempts; Go counts %d, %d", s, res.Float(i, "batches"), res.Float(i, "attempts"), len(batches[s]), attempts[s])
		}
	}
	if err := CheckNames(context.Background(), e, wf, "nope"); err == nil || !strings.Contains(err.Error(), "denoise") {
		t.Errorf("unknown step: %v", err)
	}
	if err := CheckNames(context.Background(), e, wf+"x", ""); err == nil || !strings.Contains(err.Error(), wf) {
		t.Errorf("unknown workflow: %v", err)
	}
}

// firstAttempts returns a step's batches in arrival order (their first
// attempt's start time, then batch id).
func firstAttempts(traces []*schemas.Trace, step string) []*schemas.Trace {
	var out []*schemas.Trace
	for _, tr := range traces {
		if tr.Step == step && tr.Attempt == 1 && tr.Model != "" {
			out = append(out, tr)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TsUs != out[j].TsUs {
			return out[i].TsUs < out[j].TsUs
		}
		return out[i].BatchID < out[j].BatchID
	})
	return out
}

func checkDrift(t *testing.T, e Engine, wf string, traces []*schemas.Trace, batches int) {
	t.Helper()
	ctx := context.Background()
	third := batches / 3
	for _, step := range []string{"denoise", "classify"} {
		refW, _ := ParseWindow("batches:0-"+strconv.Itoa(third), time.Now())
		recW, _ := ParseWindow("batches:"+strconv.Itoa(2*third)+"-", time.Now())
		res, err := DriftQuery(ctx, e, DriftParams{Workflow: wf, Step: step, Reference: refW, Recent: recW, Threshold: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		beyond, _ := ParseWindow("batches:"+strconv.Itoa(10*batches)+"-", time.Now())
		if _, err := DriftQuery(ctx, e, DriftParams{Workflow: wf, Step: step, Reference: beyond, Recent: recW, Threshold: 0.2}); err == nil || !strings.Contains(err.Error(), "--reference: ") || !strings.Contains(err.Error(), "choose a smaller start") {
			t.Errorf("%s: a reference window past the last batch: %v", step, err)
		}
		var table strings.Builder
		if err := res.Write(&table, FormatTable); err != nil {
			t.Fatal(err)
		}
		t.Logf("flexiflow drift --workflow %s --step %s --reference %s --recent %s\n%s", wf, step, refW.Text, recW.Text, table.String())

		// Go, independently: the step's batches in arrival order, split by index.
		first := firstAttempts(traces, step)
		byFeature := func(ts []*schemas.Trace) map[string][]schemas.FeatureSummary {
			m := map[string][]schemas.FeatureSummary{}
			for _, tr := range ts {
				for _, f := range tr.Features {
					m[f.Name] = append(m[f.Name], f)
				}
			}
			return m
		}
		ref, rec := byFeature(first[:third]), byFeature(first[2*third:])
		if len(res.Rows) != len(ref) {
			t.Errorf("%s: drift has %d features, Go %d", step, len(res.Rows), len(ref))
		}
		for i := range res.Rows {
			f := res.String(i, "feature")
			want := FeatureDrift(f, ref[f], rec[f])
			if int(res.Float(i, "ref_batches")) != want.RefBatches || int(res.Float(i, "recent_batches")) != want.RecentBatches {
				t.Errorf("%s/%s: batches %v/%v, Go %d/%d", step, f, res.Float(i, "ref_batches"), res.Float(i, "recent_batches"), want.RefBatches, want.RecentBatches)
			}
			for _, c := range []struct {
				name string
				want float64
			}{{"psi", want.PSI}, {"ks", want.KS}, {"js", want.JS}, {"ref_mean", want.RefMean}, {"recent_mean", want.RecentMean}} {
				if got := res.Float(i, c.name); math.Abs(got-c.want) > tolStat*math.Max(1, math.Abs(c.want)) {
					t.Errorf("%s/%s: %s = %.12g in ClickHouse, %.12g in Go", step, f, c.name, got, c.want)
				}
			}
			if drifted, _ := res.Value(i, "drifted").(bool); drifted != (want.PSI > 0.2) {
				t.Errorf("%s/%s: drifted=%v with PSI %.4f and threshold 0.2", step, f, drifted, want.PSI)
			}
			if f == "pixels" && want.PSI < 0.2 {
				t.Errorf("%s: pixels PSI %.3f between clean and storm input; the demo's drift should stand out", step, want.PSI)
			}
		}
		// Time windows give the same answer as Drift over raw traces.
		from, to := first[0].TsUs, first[third].TsUs
		res2, err := Run(ctx, e, QueryDrift, DriftQueryParams(wf, step, time.UnixMicro(from), time.UnixMicro(to), time.UnixMicro(to), maxTime, 0.2))
		if err != nil {
			t.Fatal(err)
		}
		want := Drift(traces, step, from, to, to, maxTime.UnixMicro())
		if len(want) != len(res2.Rows) {
			t.Fatalf("%s: time windows: %d features, Go %d", step, len(res2.Rows), len(want))
		}
		for i, w := range want {
			if res2.String(i, "feature") != w.Feature || math.Abs(res2.Float(i, "psi")-w.PSI) > tolStat*math.Max(1, w.PSI) {
				t.Errorf("%s: time windows row %d: %s psi %.12g, Go %s %.12g", step, i, res2.String(i, "feature"), res2.Float(i, "psi"), w.Feature, w.PSI)
			}
		}
	}
}

// period is one stretch of a step's history with one leader (of one
// context, for a contextual step).
type period struct {
	step, context, leader, batch                  string
	start                                         int64
	attempts, first, firstPass, passes, latencyUs int64
	batches                                       map[string]bool
}

// timeline is a (step, context) pair: what the switches query partitions by.
type timeline struct{ step, context string }

// goPeriods computes the switches query's periods from raw traces, per
// timeline.
func goPeriods(traces []*schemas.Trace) map[timeline][]*period {
	by := map[timeline][]*schemas.Trace{}
	for _, tr := range traces {
		if tr.Leader != "" {
			k := timeline{tr.Step, tr.Context}
			by[k] = append(by[k], tr)
		}
	}
	out := map[timeline][]*period{}
	for key, ts := range by {
		sort.Slice(ts, func(i, j int) bool {
			if ts[i].TsUs != ts[j].TsUs {
				return ts[i].TsUs < ts[j].TsUs
			}
			return ts[i].AttemptID < ts[j].AttemptID
		})
		var cur *period
		for _, tr := range ts {
			if cur == nil || tr.Leader != cur.leader {
				cur = &period{step: key.step, context: key.context, leader: tr.Leader, batch: tr.BatchID, start: tr.TsUs, batches: map[string]bool{}}
				out[key] = append(out[key], cur)
			}
			if tr.Model == "" {
				continue
			}
			cur.attempts++
			cur.latencyUs += tr.LatencyUs
			cur.batches[tr.BatchID] = true
			if tr.Verdict == schemas.VerdictPass {
				cur.passes++
			}
			if tr.Attempt == 1 {
				cur.first++
				if tr.Verdict == schemas.VerdictPass {
					cur.firstPass++
				}
			}
		}
	}
	return out
}

func checkSwitches(t *testing.T, e Engine, wf string, traces []*schemas.Trace, report []summary.StepReport) {
	t.Helper()
	res, err := SwitchesQuery(context.Background(), e, wf, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = res.Write(&table, FormatTable)
	t.Logf("flexiflow switches --workflow %s\n%s", wf, table.String())
	periods := goPeriods(traces)
	keys := make([]timeline, 0, len(periods))
	for k := range periods {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		return keys[i].context < keys[j].context
	})
	i := 0
	for _, key := range keys {
		ps, step := periods[key], key.step
		for k, p := range ps {
			if i >= len(res.Rows) {
				t.Fatalf("switches: %d rows, Go has more periods", len(res.Rows))
			}
			if res.String(i, "step") != step || res.String(i, "context") != key.context || res.String(i, "to_model") != p.leader ||
				res.Time(i, "at").UnixMicro() != p.start || res.String(i, "batch_id") != p.batch {
				t.Errorf("switches row %d: %s (context %q) %s → %s at %s (batch %s); Go: %s (context %q) → %s at %s (batch %s)", i, res.String(i, "step"),
					res.String(i, "context"), res.String(i, "from_model"), res.String(i, "to_model"), res.Time(i, "at").Format(TimeLayout),
					res.String(i, "batch_id"), step, key.context, p.leader, time.UnixMicro(p.start).UTC().Format(TimeLayout), p.batch)
			}
			check := func(col string, got, want float64, tol float64) {
				if math.Abs(got-want) > tol && !(math.IsNaN(want) && math.IsNaN(got)) {
					t.Errorf("switches %s row %d: %s = %.9g, Go %.9g", step, i, col, got, want)
				}
			}
			after := p
			check("attempts_after", res.Float(i, "attempts_after"), float64(after.attempts), 0)
			check("first_try_pass_after", res.Float(i, "first_try_pass_after"), ratio(after.firstPass, after.first), tolStat)
			check("pass_rate_after", res.Float(i, "pass_rate_after"), ratio(after.passes, after.attempts), tolStat)
			check("latency_ms_after", res.Float(i, "latency_ms_after"), float64(after.latencyUs)/float64(after.attempts)/1000, tolLatency)
			check("model_ms_per_batch_after", res.Float(i, "model_ms_per_batch_after"), float64(after.latencyUs)/float64(len(after.batches))/1000, tolLatency)
			if k > 0 {
				before := ps[k-1]
				if res.String(i, "from_model") != before.leader {
					t.Errorf("switches %s row %d: from %s, Go %s", step, i, res.String(i, "from_model"), before.leader)
				}
				check("attempts_before", res.Float(i, "attempts_before"), float64(before.attempts), 0)
				check("first_try_pass_before", res.Float(i, "first_try_pass_before"), ratio(before.firstPass, before.first), tolStat)
				check("pass_rate_before", res.Float(i, "pass_rate_before"), ratio(before.passes, before.attempts), tolStat)
				check("model_ms_per_batch_before", res.Float(i, "model_ms_per_batch_before"), float64(before.latencyUs)/float64(len(before.batches))/1000, tolLatency)
			} else if res.String(i, "from_model") != "" {
				t.Errorf("switches %s: the first period should have no from_model, got %s", step, res.String(i, "from_model"))
			}
			i++
		}
	}
	if i != len(res.Rows) {
		t.Errorf("switches: %d rows, Go %d periods", len(res.Rows), i)
	}
	// The demo's own report (summary package) saw the same leaders in turn,
	// per context.
	for _, s := range report {
		for _, key := range keys {
			if key.step != s.Name {
				continue
			}
			ps := periods[key]
			var sws []summary.Switch
			for _, sw := range s.Switches {
				if sw.Context == key.context {
					sws = append(sws, sw)
				}
			}
			if len(ps) != len(sws)+1 {
				t.Errorf("step %s context %q: %d periods in ClickHouse, the demo report has %d switches", s.Name, key.context, len(ps), len(sws))
				continue
			}
			for k, sw := range sws {
				if ps[k].leader != sw.From || ps[k+1].leader != sw.To {
					t.Errorf("step %s context %q switch %d: report %s → %s, ClickHouse %s → %s", s.Name, key.context, k, sw.From, sw.To, ps[k].leader, ps[k+1].leader)
				}
			}
		}
	}
	// --since keeps only later periods.
	if len(res.Rows) > 1 {
		since := res.Time(len(res.Rows)-1, "at")
		r2, err := SwitchesQuery(context.Background(), e, wf, res.String(len(res.Rows)-1, "step"), since)
		if err != nil {
			t.Fatal(err)
		}
		if len(r2.Rows) != 1 {
			t.Errorf("switches --since %s: %d rows, want 1", since, len(r2.Rows))
		}
	}
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func checkTrace(t *testing.T, e Engine, wf string, traces []*schemas.Trace) {
	t.Helper()
	// The batch with the most attempts: the most interesting journey.
	by := map[string][]*schemas.Trace{}
	for _, tr := range traces {
		by[tr.BatchID] = append(by[tr.BatchID], tr)
	}
	var id string
	for b, ts := range by {
		if len(ts) > len(by[id]) || (len(ts) == len(by[id]) && b < id) {
			id = b
		}
	}
	res, err := TraceQuery(context.Background(), e, wf, id)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = res.Write(&table, FormatTable)
	t.Logf("flexiflow trace --workflow %s %s\n%s", wf, id, table.String())
	want := by[id]
	sort.Slice(want, func(i, j int) bool {
		if want[i].TsUs != want[j].TsUs {
			return want[i].TsUs < want[j].TsUs
		}
		return want[i].AttemptID < want[j].AttemptID
	})
	if len(res.Rows) != len(want) {
		t.Fatalf("trace %s: %d rows, Go %d", id, len(res.Rows), len(want))
	}
	for i, w := range want {
		if res.String(i, "step") != w.Step || res.String(i, "model") != w.Model || res.String(i, "verdict") != w.Verdict ||
			res.String(i, "outcome") != w.Outcome || int(res.Float(i, "attempt")) != w.Attempt || res.Time(i, "ts").UnixMicro() != w.TsUs {
			t.Errorf("trace %s row %d: %v; Go %+v", id, i, res.Rows[i], *w)
		}
	}
	if _, err := TraceQuery(context.Background(), e, wf, "no-such-batch"); err == nil {
		t.Error("trace of an unknown batch should fail")
	}
}

// checkViews compares the materialized views' per-minute aggregates with
// Go's counts per step and model. copies is how many times every row was
// inserted: distinct counts ignore it, sums of values scale with it.
func checkViews(t *testing.T, e Engine, wf string, traces []*schemas.Trace, copies float64) {
	t.Helper()
	ctx := context.Background()
	res, err := e.Query(ctx, `SELECT step, model, uniqExactMerge(attempts) AS attempts, uniqExactIfMerge(passes) AS passes,
	    uniqExactIfMerge(first_attempts) AS first_attempts, uniqExactIfMerge(first_passes) AS first_passes,
	    quantilesMerge(0.5, 0.9, 0.99)(latency_us) AS latency_us
	  FROM attempts_by_minute WHERE workflow = {w:String} GROUP BY step, model ORDER BY step, model`, map[string]string{"w": wf})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ step, model string }
	type agg struct{ attempts, passes, first, firstPass int }
	want := map[key]*agg{}
	for _, tr := range traces {
		if tr.Model == "" {
			continue
		}
		k := key{tr.Step, tr.Model}
		if want[k] == nil {
			want[k] = &agg{}
		}
		a := want[k]
		a.attempts++
		if tr.Verdict == schemas.VerdictPass {
			a.passes++
		}
		if tr.Attempt == 1 {
			a.first++
			if tr.Verdict == schemas.VerdictPass {
				a.firstPass++
			}
		}
	}
	if len(res.Rows) != len(want) {
		t.Errorf("attempts_by_minute: %d step/model pairs, Go %d", len(res.Rows), len(want))
	}
	for i := range res.Rows {
		w := want[key{res.String(i, "step"), res.String(i, "model")}]
		if w == nil {
			t.Errorf("attempts_by_minute has %s/%s, Go does not", res.String(i, "step"), res.String(i, "model"))
			continue
		}
		got := agg{int(res.Float(i, "attempts")), int(res.Float(i, "passes")), int(res.Float(i, "first_attempts")), int(res.Float(i, "first_passes"))}
		if got != *w {
			t.Errorf("attempts_by_minute %s/%s: %+v, Go %+v", res.String(i, "step"), res.String(i, "model"), got, *w)
		}
	}
	fres, err := e.Query(ctx, `SELECT step, feature, uniqExactMerge(batches) AS batches, sum(value_count) AS values,
	    avgWeightedMerge(mean) AS mean, avgWeightedMerge(variance) AS variance, min(min) AS lo, max(max) AS hi
	  FROM features_by_minute WHERE workflow = {w:String} GROUP BY step, feature ORDER BY step, feature`, map[string]string{"w": wf})
	if err != nil {
		t.Fatal(err)
	}
	if len(fres.Rows) == 0 {
		t.Error("features_by_minute is empty")
	}
	for i := range fres.Rows {
		step, feature := fres.String(i, "step"), fres.String(i, "feature")
		var values, sum, vsum float64
		lo, hi := math.Inf(1), math.Inf(-1)
		first := firstAttempts(traces, step)
		for _, tr := range first {
			for _, f := range tr.Features {
				if f.Name == feature {
					values += float64(f.Count)
					sum += float64(f.Count) * f.Mean
					vsum += float64(f.Count) * f.Variance
					lo, hi = math.Min(lo, f.Min), math.Max(hi, f.Max)
				}
			}
		}
		if int(fres.Float(i, "batches")) != len(first) || fres.Float(i, "values") != copies*values ||
			math.Abs(fres.Float(i, "mean")-sum/values) > tolStat || math.Abs(fres.Float(i, "variance")-vsum/values) > tolStat*math.Max(1, vsum/values) || fres.Float(i, "lo") != lo || fres.Float(i, "hi") != hi {
			t.Errorf("features_by_minute %s/%s: %v batches, %v values, mean %v, range [%v, %v]; Go %d, %v, %v, [%v, %v]", step, feature,
				fres.Float(i, "batches"), fres.Float(i, "values"), fres.Float(i, "mean"), fres.Float(i, "lo"), fres.Float(i, "hi"),
				len(first), copies*values, sum/values, lo, hi)
		}
	}
}

// checkProfile compares what the profile query reads with the traces off
// Kafka: every attempt once, each step and model's attempts, passes and
// summed latency.
func checkProfile(t *testing.T, e Engine, wf string, traces []*schemas.Trace) {
	t.Helper()
	got, err := ProfileTraces(context.Background(), e, wf, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(traces) {
		t.Fatalf("profile: %d rows, Go %d traces", len(got), len(traces))
	}
	type sums struct{ n, passed, latency, records, attempt, ts int64 }
	tally := func(ts []*schemas.Trace) map[string]sums {
		m := map[string]sums{}
		for _, tr := range ts {
			s := m[tr.Step+"/"+tr.Model]
			s.n++
			if tr.Verdict == schemas.VerdictPass {
				s.passed++
			}
			s.latency += tr.LatencyUs
			s.records += int64(tr.Records)
			s.attempt += int64(tr.Attempt)
			s.ts += tr.TsUs % 1_000_000_000
			m[tr.Step+"/"+tr.Model] = s
		}
		return m
	}
	want, have := tally(traces), tally(got)
	for k, w := range want {
		if have[k] != w {
			t.Errorf("profile %s: %+v, Go %+v", k, have[k], w)
		}
	}
	tss := make([]int64, len(traces))
	for i, tr := range traces {
		tss[i] = tr.TsUs
	}
	slices.Sort(tss)
	since, err := ProfileTraces(context.Background(), e, wf, time.UnixMicro(tss[len(tss)/2]))
	if err != nil {
		t.Fatal(err)
	}
	if len(since) == 0 || len(since) >= len(traces) {
		t.Errorf("profile since the middle trace: %d rows of %d", len(since), len(traces))
	}
}
