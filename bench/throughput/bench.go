package throughput

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bench/throughput/noop"
	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/edge"
	"github.com/flexiflow/flexiflow/stream"
)

// Options configure a run.
type Options struct {
	Kafka       stream.Config // brokers; the caller starts the embedded one if none
	Batches     int           // batches in the backlog each variant drains
	BatchSize   int           // records per batch
	RecordBytes int           // payload bytes per record (stage-noop and raw)
	Partitions  int
	Consumers   int // consumers per variant (goroutines, each a group member)
	// Workers is how many batches each stage consumer processes at once
	// (stages.WithWorkers); 0 keeps the stage's default.
	Workers  int
	Variants []string // default: raw, stage-noop, stage-demo
	// Rounds runs every variant this many times, round-robin, and reports
	// each variant's median round (by throughput): a broker that warms up
	// or a noisy neighbour then biases no variant. Default 1.
	Rounds int
	// NoLatency skips the paced latency pass (scaling grids).
	NoLatency bool
	// Warmup batches go through an untimed raw loop first, so the first
	// variant does not pay for a cold broker (JIT, page cache). Default 0.
	Warmup   int
	Log      *zap.Logger
	Progress func(string)
	// ProfileDir, when set, receives a CPU profile of each variant's
	// backlog drain in the last round (cpu-<variant>.pprof) and an
	// allocation profile taken after it (allocs-<variant>.pprof), for
	// `go tool pprof`.
	ProfileDir string
	// Trace adds a Go execution trace of each drain to ProfileDir
	// (trace-<variant>.out, for `go tool trace`): it shows when the loop
	// waits rather than computes. Tracing slows the run severalfold, so a
	// traced run's figures are not throughput figures.
	Trace bool
}

// Variant is one variant's figures.
type Variant struct {
	Name              string  `json:"name"`
	Batches           int     `json:"batches"`
	Seconds           float64 `json:"seconds"`
	RecordsPerSecond  float64 `json:"records_per_second"`
	BatchesPerSecond  float64 `json:"batches_per_second"`
	LatencyP50Ms      float64 `json:"latency_p50_ms"`
	LatencyP99Ms      float64 `json:"latency_p99_ms"`
	PacedBatchesPerS  float64 `json:"paced_batches_per_second"`
	CPUSecondsPer1000 float64 `json:"cpu_seconds_per_1000_batches"`
	// BatchesPerTxn is how many batches one transaction carried on average
	// while draining the backlog.
	BatchesPerTxn float64 `json:"batches_per_transaction"`
}

// Report is a run's result.
type Report struct {
	Batches     int       `json:"batches"`
	BatchSize   int       `json:"batch_size"`
	RecordBytes int       `json:"record_bytes"`
	Partitions  int       `json:"partitions"`
	Consumers   int       `json:"consumers"`
	Rounds      int       `json:"rounds"`
	Variants    []Variant `json:"variants"`
	// Ratio is stage-noop's batches per second over raw's.
	Ratio float64 `json:"ratio"`
	// AddedP99Ms is stage-noop's p99 latency minus raw's, both paced at
	// half of stage-noop's throughput: the latency the stage adds. The
	// median of AddedP99MsRounds, one difference per round.
	AddedP99Ms       float64   `json:"added_p99_ms"`
	AddedP99MsRounds []float64 `json:"added_p99_ms_rounds,omitempty"`
	// The same for events: edges-noop (source → no-op step → sink) against
	// raw-events (a per-record transactional loop), events per second and
	// per-event p50 and p99 added, both paced at half of edges-noop's.
	EventsRatio            float64   `json:"events_ratio,omitempty"`
	EventsAddedP50Ms       float64   `json:"events_added_p50_ms,omitempty"`
	EventsAddedP99Ms       float64   `json:"events_added_p99_ms,omitempty"`
	EventsAddedP99MsRounds []float64 `json:"events_added_p99_ms_rounds,omitempty"`
	eventsAddedP50Rounds   []float64
}

// Run measures every variant in turn.
func Run(ctx context.Context, o Options) (*Report, error) {
	if len(o.Variants) == 0 {
		o.Variants = []string{"raw", "stage-noop", "stage-demo"}
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	if o.Batches < 1 || o.BatchSize < 1 || o.RecordBytes < 0 || o.Partitions < 1 || o.Consumers < 1 {
		return nil, fmt.Errorf("batches, batch size, partitions and consumers must be at least 1 (got %d, %d, %d, %d), record bytes at least 0",
			o.Batches, o.BatchSize, o.Partitions, o.Consumers)
	}
	rep := &Report{Batches: o.Batches, BatchSize: o.BatchSize, RecordBytes: o.RecordBytes, Partitions: o.Partitions, Consumers: o.Consumers, Rounds: max(1, o.Rounds)}
	if o.Warmup > 0 {
		w := o
		w.Batches, w.ProfileDir = o.Warmup, ""
		o.Progress(fmt.Sprintf("warm-up: %d batches through the raw loop", o.Warmup))
		if _, err := runVariant(ctx, w, "raw", 0, 0); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	// Throughput: every variant drains a backlog, round-robin.
	rounds := map[string][]Variant{}
	for r := 0; r < rep.Rounds; r++ {
		for _, name := range o.Variants {
			v, err := runVariant(ctx, o, name, 0, 0)
			if err != nil {
				return nil, fmt.Errorf("variant %s: %w", name, err)
			}
			o.Progress(fmt.Sprintf("%s (round %d/%d): %.0f batches/s", name, r+1, rep.Rounds, v.BatchesPerSecond))
			rounds[name] = append(rounds[name], *v)
		}
	}
	medians := map[string]Variant{}
	for _, name := range o.Variants {
		vs := rounds[name]
		slices.SortFunc(vs, func(a, b Variant) int { return cmp.Compare(a.BatchesPerSecond, b.BatchesPerSecond) })
		medians[name] = vs[len(vs)/2]
	}
	// Latency: raw and stage-noop meet the same stream, paced at half of
	// stage-noop's throughput, so their difference is what the stage adds;
	// any other variant is paced at half of its own throughput. Like
	// throughput, latency is measured round-robin, and each variant reports
	// its median round; the stage's added p99 is the median of the rounds'
	// differences, so a stall in one pass does not decide it.
	lw := o
	lw.Batches = min(o.Batches, 300) // a short backlog warms the consumers up
	lw.ProfileDir = ""               // profiles cover the throughput rounds (the last one)
	lat := map[string][]Variant{}
	for r := 0; r < rep.Rounds && !o.NoLatency; r++ {
		for _, name := range o.Variants {
			rate := medians[name].BatchesPerSecond / 2
			if noop, ok := medians["stage-noop"]; ok && (name == "raw" || name == "stage-noop") {
				rate = noop.BatchesPerSecond / 2
			}
			if edges, ok := medians["edges-noop"]; ok && (name == "raw-events" || name == "edges-noop") {
				rate = edges.BatchesPerSecond / 2
			}
			lv, err := runVariant(ctx, lw, name, max(1, rate), o.Batches)
			if err != nil {
				return nil, fmt.Errorf("variant %s, latency: %w", name, err)
			}
			o.Progress(fmt.Sprintf("%s (latency round %d/%d): p50 %.1f ms, p99 %.1f ms at %.0f batches/s",
				name, r+1, rep.Rounds, lv.LatencyP50Ms, lv.LatencyP99Ms, lv.PacedBatchesPerS))
			lat[name] = append(lat[name], *lv)
		}
		if raw, noop := lat["raw"], lat["stage-noop"]; len(raw) > r && len(noop) > r {
			rep.AddedP99MsRounds = append(rep.AddedP99MsRounds, noop[r].LatencyP99Ms-raw[r].LatencyP99Ms)
		}
		if raw, edges := lat["raw-events"], lat["edges-noop"]; len(raw) > r && len(edges) > r {
			rep.EventsAddedP99MsRounds = append(rep.EventsAddedP99MsRounds, edges[r].LatencyP99Ms-raw[r].LatencyP99Ms)
			rep.eventsAddedP50Rounds = append(rep.eventsAddedP50Rounds, edges[r].LatencyP50Ms-raw[r].LatencyP50Ms)
		}
	}
	for _, name := range o.Variants {
		v := medians[name]
		if ls := lat[name]; len(ls) > 0 {
			v.PacedBatchesPerS = ls[0].PacedBatchesPerS
			v.LatencyP50Ms = median(ls, func(l Variant) float64 { return l.LatencyP50Ms })
			v.LatencyP99Ms = median(ls, func(l Variant) float64 { return l.LatencyP99Ms })
		}
		rep.Variants = append(rep.Variants, v)
	}
	raw, okRaw := medians["raw"]
	noop, okNoop := medians["stage-noop"]
	if okRaw && okNoop && raw.BatchesPerSecond > 0 {
		rep.Ratio = noop.BatchesPerSecond / raw.BatchesPerSecond
	}
	if len(rep.AddedP99MsRounds) > 0 {
		rep.AddedP99Ms = median(rep.AddedP99MsRounds, func(x float64) float64 { return x })
	}
	rawEv, okRawEv := medians["raw-events"]
	edges, okEdges := medians["edges-noop"]
	if okRawEv && okEdges && rawEv.BatchesPerSecond > 0 {
		rep.EventsRatio = edges.BatchesPerSecond / rawEv.BatchesPerSecond
	}
	if len(rep.EventsAddedP99MsRounds) > 0 {
		rep.EventsAddedP99Ms = median(rep.EventsAddedP99MsRounds, func(x float64) float64 { return x })
		rep.EventsAddedP50Ms = median(rep.eventsAddedP50Rounds, func(x float64) float64 { return x })
	}
	return rep, nil
}

// median is the middle value of f over xs (the upper one of an even count).
func median[T any](xs []T, f func(T) float64) float64 {
	vs := make([]float64, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// Cell is one point of a scaling grid.
type Cell struct {
	Partitions int     `json:"partitions"`
	Consumers  int     `json:"consumers"`
	Raw        float64 `json:"raw_batches_per_second"`
	Stage      float64 `json:"stage_noop_batches_per_second"`
	Ratio      float64 `json:"ratio"`
}

// Scaling measures raw and stage-noop throughput for every combination of
// partitions and consumers (latency is not measured).
func Scaling(ctx context.Context, o Options, partitions, consumers []int) ([]Cell, error) {
	var cells []Cell
	for _, p := range partitions {
		for _, c := range consumers {
			q := o
			q.Partitions, q.Consumers, q.NoLatency = p, c, true
			q.Variants = []string{"raw", "stage-noop"}
			rep, err := Run(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("%d partitions, %d consumers: %w", p, c, err)
			}
			cell := Cell{Partitions: p, Consumers: c, Raw: rep.Variants[0].BatchesPerSecond, Stage: rep.Variants[1].BatchesPerSecond, Ratio: rep.Ratio}
			o.Progress(fmt.Sprintf("P=%d C=%d: raw %.0f, stage-noop %.0f batches/s", p, c, cell.Raw, cell.Stage))
			cells = append(cells, cell)
		}
	}
	return cells, nil
}

// WriteScaling prints a scaling grid for people.
func WriteScaling(w io.Writer, cells []Cell) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partitions\tconsumers\traw batches/s\tstage-noop batches/s\tratio\t")
	for _, c := range cells {
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%.2f\t\n", c.Partitions, c.Consumers, c.Raw, c.Stage, c.Ratio)
	}
	_ = tw.Flush() // output to the terminal, like the Fprintf calls
}

// setup is one variant's topics, input and consumer.
type setup struct {
	in, out string
	dlq     string // stages: dead letters end a batch's journey too
	group   string // the consumers' group
	topics  []string
	make    func(i int) ([]byte, error) // encoded batch i
	run     func(ctx context.Context, consumer int) error
	commits func() int64 // transactions the consumers committed so far
	// perUnit is how many records one produced unit holds: a batch's
	// (BatchSize), or 1 for the event variants.
	perUnit int
	// poll is how many records the raw loop takes per transaction (32
	// batches; 1000 events, as many as a poll brings).
	poll int
}

// runVariant drains a backlog of o.Batches through a fresh copy of variant
// name and measures throughput; then, when rate > 0, meets a stream paced at
// rate batches per second for about five seconds and measures latency.
func runVariant(ctx context.Context, o Options, name string, rate float64, paceMax int) (*Variant, error) {
	s, err := prepare(o, name)
	if err != nil {
		return nil, err
	}
	if err := stream.EnsureTopics(ctx, o.Kafka, o.Partitions, s.topics...); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(o.Kafka.ClientOpts(), kgo.DefaultProduceTopic(s.in), kgo.ProducerLinger(time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	// Throughput: preload a backlog, then drain it.
	o.Progress(fmt.Sprintf("%s: preloading %d batches", name, o.Batches))
	if err := produce(ctx, cl, s, 0, o.Batches, nil); err != nil {
		return nil, err
	}
	final := []string{s.out}
	if s.dlq != "" {
		final = append(final, s.dlq)
	}
	reader, err := newReader(o.Kafka, final...)
	if err != nil {
		return nil, err
	}
	defer reader.close()
	stopProfile, err := startProfile(o.ProfileDir, name, o.Trace)
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, o.Consumers)
	start, cpuStart := time.Now(), cpuSeconds()
	for c := 0; c < o.Consumers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(runCtx, c); err != nil {
				errs <- err
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	// Throughput counts from the moment the group is stable with every
	// consumer in it, so joins and rebalances (which cost the same whatever
	// the consumers do) do not dilute what the variants differ in.
	adm := kadm.NewClient(cl)
	for {
		if stable(ctx, adm, s.group, o.Consumers) {
			break
		}
		if time.Since(start) > time.Minute {
			return nil, fmt.Errorf("group %s did not become stable with %d members within a minute", s.group, o.Consumers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t1, n1 := time.Now(), reader.count()
	cpu0, txn0 := cpuSeconds(), s.commits()
	if n1 > o.Batches/2 { // a backlog this small is mostly gone already: count it all
		o.Progress(fmt.Sprintf("%s: %d of %d batches were done before the group was stable; counting from the start (use more --batches)", name, n1, o.Batches))
		t1, n1, cpu0, txn0 = start, 0, cpuStart, 0
	}
	if err := reader.waitFor(ctx, o.Batches, 10*time.Minute); err != nil {
		return nil, err
	}
	elapsed := time.Since(t1).Seconds()
	done := float64(o.Batches - n1)
	cpu := cpuSeconds() - cpu0
	txns := s.commits() - txn0
	if err := stopProfile(); err != nil {
		return nil, err
	}
	v := &Variant{Name: name, Batches: o.Batches, Seconds: elapsed,
		BatchesPerSecond: done / elapsed, CPUSecondsPer1000: cpu / done * 1000}
	v.RecordsPerSecond = v.BatchesPerSecond * float64(max(s.perUnit, 1))
	if txns > 0 {
		v.BatchesPerTxn = done / float64(txns)
	}

	if rate <= 0 {
		return v, nil
	}
	// Latency: a paced stream through the warmed-up consumers.
	paced := rate
	n := min(paceMax, int(max(1, paced*5))) // about five seconds
	o.Progress(fmt.Sprintf("%s: measuring latency at %.0f batches/s", name, paced))
	sent := make([]time.Time, n)
	reader.track(o.Batches, sent)
	// Encode the paced batches up front: the paced producer only sends.
	encoded := make([][]byte, n)
	for i := range encoded {
		if encoded[i], err = s.make(o.Batches + i); err != nil {
			return nil, err
		}
	}
	s.make = func(i int) ([]byte, error) { return encoded[i-o.Batches], nil }
	if err := produce(ctx, cl, s, o.Batches, n, func(i int) {
		next := start.Add(time.Duration(float64(i) / paced * float64(time.Second)))
		if i == 0 {
			start = time.Now()
			next = start
		}
		time.Sleep(time.Until(next))
		sent[i] = time.Now()
	}); err != nil {
		return nil, err
	}
	if err := reader.waitFor(ctx, o.Batches+n, 5*time.Minute); err != nil {
		return nil, err
	}
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	lat := reader.latencies()
	v.PacedBatchesPerS = paced
	v.LatencyP50Ms, v.LatencyP99Ms = quantile(lat, 0.5), quantile(lat, 0.99)
	return v, nil
}

// produce writes batches first..first+n-1; before each, pace(i-first) may
// wait and stamp the send time.
func produce(ctx context.Context, cl *kgo.Client, s *setup, first, n int, pace func(i int)) error {
	var firstErr error
	var mu sync.Mutex
	for i := first; i < first+n; i++ {
		v, err := s.make(i)
		if err != nil {
			return err
		}
		if pace != nil {
			pace(i - first)
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(batchID(i)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}

func batchID(i int) string { return fmt.Sprintf("b%08d", i) }

func prepare(o Options, name string) (*setup, error) {
	prefix := fmt.Sprintf("bench-%s-%d", name, time.Now().UnixNano()%1e9)
	switch name {
	case "raw":
		return rawSetup(o, prefix)
	case "stage-noop":
		return noopSetup(o, prefix)
	case "stage-demo":
		return demoSetup(o, prefix)
	case "raw-events":
		return rawEventsSetup(o, prefix)
	case "edges-noop":
		return edgesSetup(o, prefix)
	}
	return nil, fmt.Errorf("unknown variant %q; known: raw, stage-noop, stage-demo, raw-events, edges-noop", name)
}

// blobBatches encodes batches of Blob records of the configured size.
func blobBatches(o Options, wf string) (func(int) ([]byte, error), error) {
	reg, err := noop.Schemas()
	if err != nil {
		return nil, err
	}
	codec, err := reg.BatchCodec("flexiflow.bench.Blob")
	if err != nil {
		return nil, err
	}
	payload := make([]byte, o.RecordBytes)
	_, _ = rand.Read(payload)
	return func(i int) ([]byte, error) {
		b := &schemas.Batch{ID: batchID(i), Workflow: wf, CreatedAtMs: time.Now().UnixMilli(), Records: make([]map[string]any, o.BatchSize)}
		for j := range b.Records {
			b.Records[j] = map[string]any{"id": fmt.Sprintf("%d-%d", i, j), "payload": payload}
		}
		return codec.Encode(nil, b)
	}, nil
}

// blobEvents makes event i: one Blob record as a JSON object, with a
// payload of o.RecordBytes.
func blobEvents(o Options) func(int) ([]byte, error) {
	payload := strings.Repeat("x", o.RecordBytes)
	return func(i int) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"id": %q, "payload": %q}`, batchID(i), payload)), nil
	}
}

// rawEventsSetup is raw over single events: the most a per-record
// transactional consume → produce loop does on this broker.
func rawEventsSetup(o Options, prefix string) (*setup, error) {
	s, err := rawSetup(o, prefix)
	if err != nil {
		return nil, err
	}
	s.make, s.perUnit, s.poll = blobEvents(o), 1, 1000
	return s, nil
}

// edgesSetup runs a workflow's source, a no-op step and its sink: events
// in, one result per event out.
func edgesSetup(o Options, prefix string) (*setup, error) {
	wf, err := noop.EdgesWorkflow(prefix, o.Partitions, o.BatchSize)
	if err != nil {
		return nil, err
	}
	sreg, err := noop.Schemas()
	if err != nil {
		return nil, err
	}
	steps, err := stages.Compile(wf, stages.Deps{Models: noop.Models(), Schemas: sreg})
	if err != nil {
		return nil, err
	}
	step := steps[0]
	s := &setup{in: wf.Source.Topic, out: wf.Sink.Topic, dlq: wf.Source.DLQ, group: wf.Source.Group, make: blobEvents(o), perUnit: 1,
		topics: append(append(wf.AllTopics(), wf.EdgeTopics()...), wf.Topics.State), commits: func() int64 { return 0 }}
	s.run = func(ctx context.Context, c int) error {
		instance := fmt.Sprintf("bench-%d", c)
		g, err := edge.NewIngest(wf, step.In, nil)
		if err != nil {
			return err
		}
		e, err := edge.NewEgress(wf, step.In, step.Out, nil)
		if err != nil {
			return err
		}
		st, err := stages.NewStage(step, o.Kafka, stages.WithLogger(o.Log), stages.WithInstance(instance), stages.WithWorkers(o.Workers))
		if err != nil {
			return err
		}
		errs := make(chan error, 3)
		go func() { errs <- g.Run(ctx, o.Kafka, instance+"-ingest", o.Log) }()
		go func() { errs <- e.Run(ctx, o.Kafka, instance+"-egress", o.Log) }()
		go func() { errs <- st.Run(ctx) }()
		var first error
		for range 3 {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	return s, nil
}

func rawSetup(o Options, prefix string) (*setup, error) {
	mk, err := blobBatches(o, prefix)
	if err != nil {
		return nil, err
	}
	var commits atomic.Int64
	s := &setup{in: prefix + ".in", out: prefix + ".out", group: prefix, make: mk, commits: commits.Load, perUnit: o.BatchSize}
	s.topics = []string{s.in, s.out}
	s.run = func(ctx context.Context, c int) error {
		sess, err := kgo.NewGroupTransactSession(o.Kafka.TransactOpts(prefix, fmt.Sprintf("%s-%d", prefix, c), s.in)...)
		if err != nil {
			return err
		}
		defer sess.Close()
		for {
			f := sess.PollRecords(ctx, max(s.poll, 32))
			if ctx.Err() != nil || f.IsClientClosed() {
				return nil
			}
			if f.NumRecords() == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				return err
			}
			f.EachRecord(func(r *kgo.Record) {
				sess.Produce(ctx, &kgo.Record{Topic: s.out, Key: r.Key, Value: r.Value, Headers: r.Headers}, nil)
			})
			if _, err := sess.End(context.WithoutCancel(ctx), kgo.TryCommit); err != nil {
				return err
			}
			commits.Add(1)
		}
	}
	return s, nil
}

func noopSetup(o Options, prefix string) (*setup, error) {
	wf, err := noop.Workflow(prefix, o.Partitions)
	if err != nil {
		return nil, err
	}
	reg := noop.Models()
	sreg, err := noop.Schemas()
	if err != nil {
		return nil, err
	}
	steps, err := stages.Compile(wf, stages.Deps{Models: reg, Schemas: sreg})
	if err != nil {
		return nil, err
	}
	mk, err := blobBatches(o, prefix)
	if err != nil {
		return nil, err
	}
	s := stageSetup(o, steps[0], mk)
	s.perUnit = o.BatchSize
	return s, nil
}

func demoSetup(o Options, prefix string) (*setup, error) {
	wf, err := demo.Workflow()
	if err != nil {
		return nil, err
	}
	wf.Name = prefix // a fresh name keeps this run's groups apart
	c, err := demo.Compile(wf)
	if err != nil {
		return nil, err
	}
	prod, err := demo.NewProducer(c.Digits, wf, c.Schemas, o.BatchSize, 1)
	if err != nil {
		return nil, err
	}
	step := c.Steps[0]
	// Everything the demo's first step writes stays under this run's prefix.
	spec := *step.Spec
	spec.Topics.In, spec.Topics.Retry, spec.Topics.DLQ = prefix+".in", prefix+".retry", prefix+".dlq"
	spec.Output, spec.Group = prefix+".out", prefix
	wf.Topics.Traces, wf.Topics.State = prefix+".traces", prefix+".state"
	step.Spec = &spec
	s := stageSetup(o, step, func(i int) ([]byte, error) { return prod.Encode(i, o.Batches) })
	s.perUnit = o.BatchSize
	return s, nil
}

func stageSetup(o Options, step *stages.Step, mk func(int) ([]byte, error)) *setup {
	wf := step.Workflow
	spec := step.Spec
	s := &setup{in: spec.Topics.In, out: spec.Output, dlq: spec.Topics.DLQ, group: spec.Group, make: mk,
		topics: []string{spec.Topics.In, spec.Topics.Retry, spec.Topics.DLQ, spec.Output, wf.Topics.Traces, wf.Topics.State}}
	var (
		mu      sync.Mutex
		running []*stages.Stage
	)
	s.run = func(ctx context.Context, c int) error {
		st, err := stages.NewStage(step, o.Kafka, stages.WithLogger(o.Log), stages.WithInstance(fmt.Sprintf("bench-%d", c)), stages.WithWorkers(o.Workers))
		if err != nil {
			return err
		}
		mu.Lock()
		running = append(running, st)
		mu.Unlock()
		return st.Run(ctx)
	}
	s.commits = func() int64 {
		mu.Lock()
		defer mu.Unlock()
		var n int64
		for _, st := range running {
			n += st.Snapshot().Commits
		}
		return n
	}
	return s
}

// startProfile starts a CPU profile of variant into dir (nothing when dir
// is empty), and an execution trace if withTrace; the returned func stops
// them and writes the allocation profile.
func startProfile(dir, variant string, withTrace bool) (func() error, error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu-"+variant+".pprof"))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // the profile failed to start; its error is the one to report
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var tf *os.File
	if withTrace {
		if tf, err = os.Create(filepath.Join(dir, "trace-"+variant+".out")); err == nil {
			if err = trace.Start(tf); err != nil {
				_ = tf.Close() // the trace failed to start; its error is the one to report
			}
		}
		if err != nil {
			pprof.StopCPUProfile()
			_ = f.Close()
			return nil, fmt.Errorf("execution trace: %w", err)
		}
	}
	return func() error {
		pprof.StopCPUProfile()
		err := f.Close()
		if tf != nil {
			trace.Stop()
			err = errors.Join(err, tf.Close())
		}
		if err != nil {
			return err
		}
		h, err := os.Create(filepath.Join(dir, "allocs-"+variant+".pprof"))
		if err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		defer h.Close()
		return pprof.Lookup("allocs").WriteTo(h, 0)
	}, nil
}

// stable reports whether group is Stable with members members.
func stable(ctx context.Context, adm *kadm.Client, group string, members int) bool {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g, ok := gs[group]
	return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == members
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%d batches of %d records × %d bytes, %d partitions, %d consumer(s), median of %d round(s)\n", r.Batches, r.BatchSize, r.RecordBytes, r.Partitions, r.Consumers, r.Rounds)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\trecords/s\tbatches/s\tp50 ms\tp99 ms\t(at batches/s)\tCPU s/1000 batches\tbatches/txn\t")
	for _, v := range r.Variants {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.0f\t%.2f\t%.1f\t\n", v.Name, v.RecordsPerSecond, v.BatchesPerSecond,
			v.LatencyP50Ms, v.LatencyP99Ms, v.PacedBatchesPerS, v.CPUSecondsPer1000, v.BatchesPerTxn)
	}
	_ = tw.Flush() // output to the terminal, like the Fprintf calls
	if r.EventsRatio > 0 {
		fmt.Fprintf(w, "events: ratio (edges-noop / raw-events, events per second): %.2f\n", r.EventsRatio)
		fmt.Fprintf(w, "events: latency the source, step and sink add per event (same paced stream): p50 %+.1f ms, p99 %+.1f ms\n", r.EventsAddedP50Ms, r.EventsAddedP99Ms)
	}
	if r.Ratio == 0 && r.EventsRatio > 0 {
		return
	}
	fmt.Fprintf(w, "ratio (stage-noop / raw throughput): %.2f\n", r.Ratio)
	fmt.Fprintf(w, "p99 latency the stage adds (stage-noop - raw, same paced stream): %+.1f ms", r.AddedP99Ms)
	if len(r.AddedP99MsRounds) > 1 {
		rounds := make([]string, len(r.AddedP99MsRounds))
		for i, x := range r.AddedP99MsRounds {
			rounds[i] = fmt.Sprintf("%+.1f", x)
		}
		fmt.Fprintf(w, " (median of rounds %s)", strings.Join(rounds, ", "))
	}
	fmt.Fprintln(w)
}
