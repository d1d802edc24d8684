package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stages/plan"
	"github.com/flexiflow/flexiflow/stream"
)

// validation is what plan validate reports.
type validation struct {
	Workflow  string           `json:"workflow"`
	Config    plan.Config      `json:"config"`
	Workload  plan.Workload    `json:"workload"`
	Measured  measured         `json:"measured"`
	Predicted *plan.Prediction `json:"predicted,omitempty"`
	// Error is (predicted − measured) / measured, for throughput and p99.
	Error *predictionError `json:"error,omitempty"`
}

type measured struct {
	BatchesPerS  float64 `json:"batches_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	Delivered    int     `json:"delivered"`
	DeadLettered int     `json:"dead_lettered"`
	WallS        float64 `json:"wall_s"`
	// CPUS is the CPU this process used from the first batch written to
	// the last one ended, Attempts the attempts of every step, and
	// StageCPUMs their quotient (idle polling included).
	CPUS       float64 `json:"cpu_s"`
	Attempts   int64   `json:"attempts"`
	StageCPUMs float64 `json:"stage_cpu_ms"`
	// OtherCPUS is the CPU the machine's other processes used meanwhile
	// (the broker's, when it runs here; Linux only).
	OtherCPUS float64 `json:"other_cpu_s,omitempty"`
	// Steps is what each step's consumers counted, summed.
	Steps []measuredStep `json:"steps"`
}

type measuredStep struct {
	Name          string  `json:"name"`
	Commits       int64   `json:"commits"`
	Aborted       int64   `json:"aborted"`
	BatchesPerTxn float64 `json:"batches_per_txn"`
	// EndMs is the mean flush and commit of a transaction; WaitMs the
	// mean wait for its batches' results.
	EndMs            float64 `json:"end_ms"`
	WaitMs           float64 `json:"wait_ms"`
	AttemptsPerBatch float64 `json:"attempts_per_batch"`
}

type predictionError struct {
	BatchesPerS float64 `json:"batches_per_s"`
	P99Ms       float64 `json:"p99_ms"`
}

func newPlanValidateCmd(g *globals) *cobra.Command {
	var wfPath, brokers, configPath, profilePath, from, format string
	var useDefault, reset bool
	var batches, size int
	var rate, perConsumer, stageCPU float64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "validate --workflow FILE --brokers B (--config PLAN.json | --default) [--batches N]",
		Short: "Deploy a workflow in this process as a plan says, feed it, and report measured against predicted",
		Long: `Run the workflow in this process the way PLAN.json says: its topics with the
plan's partitions, each step's consumers, workers and --max-poll. Feed it
--batches batches of --batch-size records, made up from the input schema (or
read from --from, a JSON Lines file of input records, used in turn), all at
once or at --rate batches/s, and report what was measured (batches/s from the
first output to the last; per-batch p50 and p99 from when the batch was
written to when its output could be read) beside what the simulator predicts
for the same workload. The JSON that plan --format json prints is a PLAN.json
(its profile predicts); --default runs today's defaults instead (give
--profile for a prediction). The run's traces stay on the traces topic, so
plan --traces-from B can profile them.

A topic that exists with other partitions than the plan's is an error;
--reset-topics deletes the workflow's topics first (all but the traces),
and with them what its policies learned, and its steps' consumer groups,
whose consumers of an earlier run would otherwise hold their partitions
until their sessions time out.`,
		Example: `  flexiflow plan validate --workflow examples/planner.yaml --brokers kafka:9092 --default --batches 1000 --reset-topics
  flexiflow plan validate --workflow examples/planner.yaml --brokers kafka:9092 --config plan.json --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: table or json", format)
			}
			if (configPath == "") == !useDefault {
				return errors.New("give --config PLAN.json or --default")
			}
			l, err := load(cmd.Context(), g, wfPath, brokers, true, log)
			if err != nil {
				return err
			}
			defer l.close()
			cfg := defaultConfig(l.wf)
			var prof *plan.Profile
			if configPath != "" {
				var pf planFile
				if err := readJSON(configPath, &pf); err != nil {
					return err
				}
				cfg, prof = pf.Config, pf.Profile
				if pf.Workflow != "" && pf.Workflow != l.wf.Name {
					return fmt.Errorf("%s is a plan for workflow %q, not %q", configPath, pf.Workflow, l.wf.Name)
				}
			}
			if profilePath != "" {
				if prof, err = readProfile(profilePath, l.wf); err != nil {
					return err
				}
			} else if prof != nil {
				if err := prof.Check(l.wf); err != nil {
					return fmt.Errorf("%s: %w", configPath, err)
				}
			}
			if prof != nil && cmd.Flags().Changed("stage-cpu-ms") {
				prof.StageCPUMs = stageCPU
			}
			if err := checkConfig(cfg, l); err != nil {
				return fmt.Errorf("%s: %w", configPath, err)
			}
			// Every consumer runs in this process, on its cores.
			v := validation{Workflow: l.wf.Name, Config: cfg,
				Workload: plan.Workload{Batches: batches, Rate: rate, RecordsPerBatch: float64(size), CoresPerConsumer: perConsumer,
					SharedCores: float64(runtime.GOMAXPROCS(0))}}
			recs, err := inputRecords(l, from, size)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "validating %s on %v: %d batches of %d records\n", cfg, l.kafka.Brokers, batches, size)
			m, err := runValidation(cmd.Context(), l, cfg, recs, batches, size, rate, reset, timeout, log)
			if err != nil {
				return err
			}
			v.Measured = m
			if prof != nil {
				sim, err := plan.NewSimulator(prof, v.Workload)
				if err != nil {
					return err
				}
				p, err := sim.Run(cfg)
				if err != nil {
					return err
				}
				v.Predicted = &p
				if m.BatchesPerS > 0 && m.P99Ms > 0 {
					v.Error = &predictionError{BatchesPerS: p.BatchesPerS/m.BatchesPerS - 1, P99Ms: p.P99Ms/m.P99Ms - 1}
				}
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-10s %12s %10s %10s %10s %6s\n", "", "batches/s", "p50 ms", "p99 ms", "delivered", "dlq")
			fmt.Fprintf(w, "%-10s %12.1f %10.0f %10.0f %10d %6d\n", "measured", m.BatchesPerS, m.P50Ms, m.P99Ms, m.Delivered, m.DeadLettered)
			if p := v.Predicted; p != nil {
				fmt.Fprintf(w, "%-10s %12.1f %10.0f %10.0f %10d %6d\n", "predicted", p.BatchesPerS, p.P50Ms, p.P99Ms, p.Delivered, p.DeadLettered)
				fmt.Fprintf(w, "error: throughput %+.1f%%, p99 %+.1f%%\n", 100*v.Error.BatchesPerS, 100*v.Error.P99Ms)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port]; empty starts the embedded broker")
	f.StringVar(&configPath, "config", "", "the plan to deploy: the JSON plan --format json prints")
	f.BoolVar(&useDefault, "default", false, "deploy today's defaults instead of a plan")
	f.StringVar(&profilePath, "profile", "", "a profile (plan profile --out) to predict with, when PLAN.json has none")
	f.IntVar(&batches, "batches", 1000, "batches to feed")
	f.IntVar(&size, "batch-size", 32, "records per batch")
	f.Float64Var(&rate, "rate", 0, "batches/s to feed them at, evenly (0: all at once)")
	f.StringVar(&from, "from", "", "a JSON Lines file of input records to feed, used in turn (default: records made up from the input schema)")
	f.BoolVar(&reset, "reset-topics", false, "delete the workflow's topics (all but the traces) before the run")
	f.Float64Var(&perConsumer, "cores-per-consumer", 1, "cores one consumer has, for models that compute (as in plan)")
	f.Float64Var(&stageCPU, "stage-cpu-ms", 0, "CPU per attempt besides the model, for the prediction (default: the profile's)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up when the batches have not all ended by then")
	f.StringVar(&format, "format", "table", "table or json")
	atLeast(f, "batches", "2")
	atLeast(f, "batch-size", "1")
	return cmd
}

// checkConfig says whether cfg deploys l's workflow.
func checkConfig(cfg plan.Config, l *loaded) error {
	names := make([]string, len(l.wf.Steps))
	for i, s := range l.wf.Steps {
		names[i] = s.Name
	}
	return cfg.Check(names)
}

// inputRecords are the records batches are made of: those of the JSON
// Lines file from, or size made up from the input schema.
func inputRecords(l *loaded, from string, size int) ([]map[string]any, error) {
	codec, err := l.schemas.BatchCodec(l.wf.InputSchema)
	if err != nil {
		return nil, err
	}
	var recs []map[string]any
	if from == "" {
		r := rand.New(rand.NewPCG(1, 2))
		for i := range max(size, 64) {
			rec, err := codec.Example(i, r)
			if err != nil {
				return nil, err
			}
			recs = append(recs, rec)
		}
	} else {
		fh, err := os.Open(from)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 16<<20)
		for n := 1; sc.Scan(); n++ {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return nil, fmt.Errorf("%s:%d: not a JSON object: %v", from, n, err)
			}
			recs = append(recs, rec)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("%s holds no records", from)
		}
	}
	// Check that a batch of them encodes before anything starts.
	if _, err := codec.Encode(nil, &schemas.Batch{ID: "check", Workflow: l.wf.Name, Records: recs[:1]}); err != nil {
		return nil, fmt.Errorf("the input records do not fit %s: %w", l.wf.InputSchema, err)
	}
	return recs, nil
}

// runValidation deploys cfg, feeds it and measures.
func runValidation(ctx context.Context, l *loaded, cfg plan.Config, recs []map[string]any, batches, size int, rate float64, reset bool, timeout time.Duration, log *zap.Logger) (measured, error) {
	topics := append(l.wf.AllTopics(), l.wf.Topics.State)
	topics = slices.DeleteFunc(topics, func(t string) bool { return t == l.wf.Topics.Traces })
	if err := prepareTopics(ctx, l, topics, cfg.Partitions, reset); err != nil {
		return measured{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pipes []*pipeline.Pipeline
	defer func() {
		for _, p := range pipes {
			_ = p.Stop()
		}
	}()
	for i, step := range l.steps {
		sc := cfg.Steps[i]
		p, err := pipeline.Start(runCtx, []*stages.Step{step}, l.kafka, pipeline.Replicas(sc.Consumers), pipeline.CreateTopics(cfg.Partitions),
			pipeline.WithLogger(log), pipeline.Instance("plan-validate"),
			pipeline.StageOptions(stages.WithWorkers(sc.Workers), stages.WithMaxPoll(sc.MaxPoll)))
		if err != nil {
			return measured{}, err
		}
		pipes = append(pipes, p)
	}
	ready := time.Now().Add(60 * time.Second)
	for {
		all := true
		for _, p := range pipes {
			all = all && p.Ready()
		}
		if all {
			break
		}
		if time.Now().After(ready) {
			return measured{}, errors.New("the stages did not all join their groups within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Read what ends: the output and every step's dead letters.
	run := fmt.Sprintf("v%d-", time.Now().UnixNano())
	ends := []string{l.steps[len(l.steps)-1].Spec.Output}
	for _, s := range l.wf.Steps {
		ends = append(ends, s.Topics.DLQ)
	}
	cons, err := kgo.NewClient(append(l.kafka.ClientOpts(), kgo.ConsumeTopics(ends...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return measured{}, err
	}
	defer cons.Close()
	// Be fetching before the first batch is sent, so a batch's end is when
	// it ended, not when a consumer that started late first caught up
	// (what it reads now is earlier runs' records, left out below).
	warm, cancelWarm := context.WithTimeout(runCtx, time.Second)
	cons.PollFetches(warm)
	cancelWarm()
	var mu sync.Mutex
	sent := make(map[string]time.Time, batches)
	type end struct {
		at   time.Time // when it was read
		ts   time.Time // when the stage produced it
		dead bool
	}
	ended := make(map[string]end, batches)
	done := make(chan struct{})
	out := ends[0]
	go func() {
		defer close(done)
		for {
			fs := cons.PollFetches(runCtx)
			if runCtx.Err() != nil || fs.IsClientClosed() {
				return
			}
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				id := stream.Header(r, stream.HeaderBatchID)
				if len(id) < len(run) || id[:len(run)] != run {
					return
				}
				if _, dup := ended[id]; !dup {
					ended[id] = end{at: now, ts: r.Timestamp, dead: r.Topic != out}
				}
			})
			n := len(ended)
			mu.Unlock()
			if n >= batches {
				return
			}
		}
	}()
	codec, err := l.schemas.BatchCodec(l.wf.InputSchema)
	if err != nil {
		return measured{}, err
	}
	prod, err := kgo.NewClient(append(l.kafka.ClientOpts(), kgo.DefaultProduceTopic(l.wf.Steps[0].Topics.In))...)
	if err != nil {
		return measured{}, err
	}
	defer prod.Close()
	start, cpu0 := time.Now(), plan.ProcessCPU()
	machine0, machineOK := plan.MachineCPU()
	var perr error
	var pmu sync.Mutex
	for i := 0; i < batches; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		id := fmt.Sprintf("%s%06d", run, i)
		b := &schemas.Batch{ID: id, Workflow: l.wf.Name, CreatedAtMs: time.Now().UnixMilli(), Records: make([]map[string]any, size)}
		for j := range size {
			b.Records[j] = recs[(i*size+j)%len(recs)]
		}
		val, err := codec.Encode(nil, b)
		if err != nil {
			return measured{}, err
		}
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		prod.Produce(ctx, &kgo.Record{Key: []byte(id), Value: val, Headers: stream.Headers(id, 0, nil, "")}, func(_ *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = errors.Join(perr, err)
				pmu.Unlock()
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		return measured{}, err
	}
	if perr != nil {
		return measured{}, fmt.Errorf("feeding %s: %w", l.wf.Steps[0].Topics.In, perr)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		mu.Lock()
		n := len(ended)
		mu.Unlock()
		return measured{}, fmt.Errorf("only %d of %d batches ended within --timeout %s", n, batches, timeout)
	case <-ctx.Done():
		return measured{}, ctx.Err()
	}
	for _, p := range pipes {
		if err := p.Err(); err != nil {
			return measured{}, err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var m measured
	var lat []float64
	var first, last, firstTs, lastTs time.Time
	for id, e := range ended {
		if e.dead {
			m.DeadLettered++
			continue
		}
		m.Delivered++
		lat = append(lat, float64(e.at.Sub(sent[id]))/1e6)
		if first.IsZero() || e.at.Before(first) {
			first = e.at
		}
		if e.at.After(last) {
			last = e.at
		}
		if firstTs.IsZero() || e.ts.Before(firstTs) {
			firstTs = e.ts
		}
		if e.ts.After(lastTs) {
			lastTs = e.ts
		}
	}
	if !last.After(first) {
		// Every output came in one fetch: the stages' produce times
		// still tell how fast they went.
		first, last = firstTs, lastTs
	}
	m.WallS = time.Since(start).Seconds()
	m.CPUS = (plan.ProcessCPU() - cpu0).Seconds()
	if machine1, ok := plan.MachineCPU(); ok && machineOK {
		m.OtherCPUS = max(0, (machine1-machine0).Seconds()-m.CPUS)
	}
	for i, p := range pipes {
		ms := measuredStep{Name: cfg.Steps[i].Name}
		var attempts, left, records int64
		for _, sn := range p.Snapshots() {
			ms.Commits += sn.Commits
			ms.Aborted += sn.Aborted
			ms.EndMs += sn.EndMs
			ms.WaitMs += sn.WaitMs
			attempts += sn.Batches // one routed attempt each
			m.Attempts += sn.Batches
			left += sn.Next + sn.DLQ
			records += sn.Batches + sn.Feedback
		}
		if txns := ms.Commits + ms.Aborted; txns > 0 {
			ms.BatchesPerTxn = float64(records) / float64(txns)
			ms.EndMs /= float64(txns)
			ms.WaitMs /= float64(txns)
		}
		if left > 0 {
			ms.AttemptsPerBatch = float64(attempts) / float64(left)
		}
		m.Steps = append(m.Steps, ms)
	}
	if m.Attempts > 0 {
		m.StageCPUMs = m.CPUS * 1000 / float64(m.Attempts)
	}
	if m.Delivered > 1 && last.After(first) {
		m.BatchesPerS = float64(m.Delivered-1) / last.Sub(first).Seconds()
	}
	if len(lat) > 0 {
		d := plan.NewDist(lat)
		m.P50Ms, m.P99Ms = d.P50, d.P99
	}
	return m, nil
}

// forgetMembers removes the static members of the workflow's step groups
// and deletes the groups: a consumer of an earlier run that is gone (static
// members do not leave their group when they stop) would otherwise hold its
// partitions until its session times out, and a run with fewer consumers
// than the one before would start with part of its input unread.
func forgetMembers(ctx context.Context, adm *kadm.Client, l *loaded) error {
	var groups []string
	for _, s := range l.wf.Steps {
		groups = append(groups, s.Group)
	}
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return fmt.Errorf("describing the workflow's consumer groups: %w", err)
	}
	for _, g := range described.Sorted() {
		var ids []string
		for _, m := range g.Members {
			if m.InstanceID != nil {
				ids = append(ids, *m.InstanceID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if _, err := adm.LeaveGroup(ctx, kadm.LeaveGroup(g.Group).InstanceIDs(ids...).Reason("plan validate --reset-topics")); err != nil {
			return fmt.Errorf("removing the members of group %s: %w", g.Group, err)
		}
	}
	// A group that does not exist, or still has members, is left alone.
	_, _ = adm.DeleteGroups(ctx, groups...)
	return nil
}

// prepareTopics deletes topics first when reset says so, then checks
// that those that exist have the plan's partitions.
func prepareTopics(ctx context.Context, l *loaded, topics []string, partitions int, reset bool) error {
	cl, err := kgo.NewClient(l.kafka.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if reset {
		if err := forgetMembers(ctx, adm, l); err != nil {
			return err
		}
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			return fmt.Errorf("deleting the workflow's topics: %w", err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			details, err := adm.ListTopics(ctx, topics...)
			if err != nil {
				return err
			}
			left := 0
			for _, d := range details {
				if d.Err == nil {
					left++
				}
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of the workflow's topics were still there 60s after they were deleted", left)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	}
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return err
	}
	for _, name := range topics {
		d, ok := details[name]
		if !ok || d.Err != nil || name == l.wf.Topics.State {
			continue
		}
		if n := len(d.Partitions); n != partitions {
			return fmt.Errorf("topic %s has %d partitions and the plan %d: run with --reset-topics to delete the workflow's topics first (what its policies learned goes with them), or validate a plan with %d", name, n, partitions, n)
		}
	}
	return nil
}
