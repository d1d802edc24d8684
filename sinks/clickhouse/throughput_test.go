package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// TestSinkThroughputIntoChDB measures the sink's rows per second into the
// ClickHouse engine (chDB): FLEXIFLOW_SINK_ROWS traces (default 20000)
// shaped like the demo's (two features with percentiles, three estimates,
// two assertions) are written to the embedded broker first, then one sink
// moves them into a migrated chDB in batches of 5000, once through the
// JSONEachRow test bridge and once through clickhouse-go/v2 (Native blocks
// over HTTP). It reports the sink's rate (Kafka read, decode, convert,
// insert, commit) and, for comparison, the inserter's alone on the same rows.
func TestSinkThroughputIntoChDB(t *testing.T) {
	n := 20000
	if s := os.Getenv("FLEXIFLOW_SINK_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	t.Run("JSONEachRow bridge", func(t *testing.T) {
		ch := startChDB(t)
		measureSink(t, ch, ch, n)
	})
	t.Run("clickhouse-go/v2 over HTTP", func(t *testing.T) {
		dsn := startChDBHTTP(t)
		nat, err := OpenNative(context.Background(), dsn("flexiflow"))
		if err != nil {
			t.Fatal(err)
		}
		defer nat.Close()
		measureSink(t, nat, nat, n)
	})
}

func measureSink(t *testing.T, e Engine, ins Inserter, n int) {
	ctx := context.Background()
	if _, err := Migrate(ctx, e); err != nil {
		t.Fatal(err)
	}
	cfg := streamtest.Backends(t)[0].Start(t)
	wf := streamtest.Unique("throughput")
	topic := wf + ".traces"
	traces := demoShapedTraces(wf, n)
	writeTraces(t, cfg, topic, traces)

	took, st := runSink(t, cfg, ins, SinkOptions{Topic: topic, BatchRows: 5000, FlushInterval: time.Second}, n)
	t.Logf("sink: %d traces from Kafka into chDB in %s: %.0f rows/s (%d flushes)", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), st.Flushes)

	rows := make([]Row, len(traces))
	for i, tr := range traces {
		tr.AttemptID += "/direct"
		rows[i] = FromTrace(tr)
	}
	start := time.Now()
	for i := 0; i < len(rows); i += 5000 {
		if err := ins.Insert(ctx, rows[i:min(i+5000, len(rows))]); err != nil {
			t.Fatal(err)
		}
	}
	direct := time.Since(start)
	t.Logf("inserter alone: %d rows inserted directly in %s: %.0f rows/s", n, direct.Round(time.Millisecond), float64(n)/direct.Seconds())
	res, err := e.Query(ctx, "SELECT count() AS n FROM traces FINAL WHERE workflow = {w:String}", map[string]string{"w": wf})
	if err != nil {
		t.Fatal(err)
	}
	if got := int(res.Float(0, "n")); got != 2*n {
		t.Errorf("%d rows in traces, want %d", got, 2*n)
	}
}

func demoShapedTraces(wf string, n int) []*schemas.Trace {
	base := time.Now().Add(-time.Hour).UnixMicro()
	out := make([]*schemas.Trace, n)
	for i := range out {
		id := fmt.Sprintf("b%07d", i)
		out[i] = &schemas.Trace{AttemptID: id + "/classify/1", BatchID: id, Workflow: wf, Step: "classify", Model: "mlp",
			Attempt: 1, TsUs: base + int64(i)*100, LatencyUs: 150, Records: 32, RecordsPassed: 29, Verdict: schemas.VerdictPass,
			Outcome: schemas.OutcomeNext, Leader: "mlp",
			Assertions: []schemas.AssertionCount{{Name: "confident", Failed: 3}, {Name: "digit", Failed: 0}},
			Estimates: []schemas.Estimate{{Model: "centroid", PassProb: 0.5, CostMs: 5.1, Score: 10.2, Pulls: 40},
				{Model: "mlp", PassProb: 0.9, CostMs: 5.2, Score: 5.8, Pulls: 90}, {Model: "knn", PassProb: 0.95, CostMs: 8.4, Score: 8.8, Pulls: 20}},
			Features: []schemas.FeatureSummary{
				{Name: "label", Count: 32, Mean: 4.5, Variance: 8, Min: 0, Max: 9, Quantiles: []float64{0, 2, 4, 7, 9}},
				{Name: "pixels", Count: 2048, Mean: 4.8, Variance: 36, Min: 0, Max: 16, Quantiles: []float64{0, 0, 1, 10, 16}},
			}}
	}
	return out
}

// writeTraces produces traces to topic, then any extra raw values.
func writeTraces(t *testing.T, cfg stream.Config, topic string, traces []*schemas.Trace, extra ...[]byte) {
	t.Helper()
	codec, err := schemas.NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureTopics(context.Background(), cfg, 3, topic); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, len(traces)+len(extra))
	for _, tr := range traces {
		v, err := codec.Encode(nil, tr)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(tr.BatchID), Value: v})
	}
	for _, v := range extra {
		recs = append(recs, &kgo.Record{Value: v})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}
