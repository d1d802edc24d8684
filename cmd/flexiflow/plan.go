package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/sinks/clickhouse"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/plan"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// planFile is what `plan --format json` prints and `plan validate
// --config` reads.
type planFile struct {
	Workflow  string          `json:"workflow"`
	Objective plan.Objective  `json:"objective"`
	Workload  plan.Workload   `json:"workload"`
	Config    plan.Config     `json:"config"`
	Predicted plan.Prediction `json:"predicted"`
	Feasible  bool            `json:"feasible"`
	Cores     float64         `json:"cores"`
	// BestP99Ms is, when no configuration meets the SLO, the lowest p99
	// the search reached.
	BestP99Ms float64       `json:"best_p99_ms,omitempty"`
	Default   planDefault   `json:"default"`
	Search    planSearch    `json:"search"`
	Explain   string        `json:"explain,omitempty"`
	Profile   *plan.Profile `json:"profile,omitempty"`
}

type planDefault struct {
	plan.Prediction
	Config plan.Config `json:"config"`
}

type planSearch struct {
	SpaceSize  float64 `json:"space_size"`
	Iterations int     `json:"iterations"`
	Evaluated  int     `json:"evaluated"`
	ElapsedMs  float64 `json:"elapsed_ms"`
}

// defaultConfig is the deployment the flags give when nobody plans: the
// workflow's partitions, one consumer per step, a worker per CPU and
// transactions of stages.DefaultMaxPoll.
func defaultConfig(wf *workflow.Workflow) plan.Config {
	c := plan.Config{Partitions: wf.Partitions}
	for _, s := range wf.Steps {
		c.Steps = append(c.Steps, plan.StepConfig{Name: s.Name, Consumers: 1, Workers: runtime.GOMAXPROCS(0), MaxPoll: stages.DefaultMaxPoll})
	}
	return c
}

// profileSource is where plan and plan profile get a profile from.
type profileSource struct {
	tracesFrom, profile, brokerProfile string
	clickhouseDSN                      string
	minTraces                          int
	capacity                           []string
	since                              time.Duration
	stageCPU                           float64
	cmd                                *cobra.Command
}

func (p *profileSource) add(cmd *cobra.Command, withProfile bool) {
	f := cmd.Flags()
	f.StringVar(&p.tracesFrom, "traces-from", "", "Kafka brokers whose <workflow>.traces topic to profile (the broker is calibrated too, unless --broker-profile)")
	f.StringVar(&p.clickhouseDSN, "clickhouse", "", "profile the traces in this ClickHouse instead (clickhouse://USER:PASSWORD@HOST:9000/DB; with --broker-profile)")
	if withProfile {
		f.StringVar(&p.profile, "profile", "", "a profile saved by flexiflow plan profile --out, instead of --traces-from")
	}
	f.StringVar(&p.brokerProfile, "broker-profile", "", "the broker's costs saved by flexiflow plan calibrate --out, instead of calibrating --traces-from")
	f.IntVar(&p.minTraces, "min-traces", plan.MinTraces, "traces a model the cascade reaches needs before it can be profiled")
	f.Float64Var(&p.stageCPU, "stage-cpu-ms", 0, "CPU one attempt costs the stage besides its model, ms of one core (process_cpu_seconds_total over flexiflow_attempts_total; plan validate measures it); 0 leaves it out")
	p.cmd = cmd
	f.DurationVar(&p.since, "since", 0, "profile only the traces of the last DURATION (0: all on the topic), e.g. the run that matches today's load")
	f.StringSliceVar(&p.capacity, "capacity", nil, "MODEL=N: the model's server serves N calls at once across all consumers (repeatable; default unbounded)")
	atLeast(f, "min-traces", "1")
}

func (p *profileSource) load(ctx context.Context, g *globals, wf *workflow.Workflow, log *zap.Logger) (*plan.Profile, error) {
	prof, err := p.read(ctx, g, wf, log)
	if err != nil {
		return nil, err
	}
	if p.cmd.Flags().Changed("stage-cpu-ms") {
		if p.stageCPU < 0 {
			return nil, fmt.Errorf("--stage-cpu-ms must not be negative, got %g", p.stageCPU)
		}
		prof.StageCPUMs = p.stageCPU
	}
	return prof, nil
}

func (p *profileSource) read(ctx context.Context, g *globals, wf *workflow.Workflow, log *zap.Logger) (*plan.Profile, error) {
	if p.profile != "" {
		if p.tracesFrom != "" {
			return nil, errors.New("give --profile or --traces-from, not both")
		}
		return readProfile(p.profile, wf)
	}
	if p.tracesFrom == "" && p.clickhouseDSN == "" {
		return nil, errors.New("say where the traces are: --traces-from BROKERS (the workflow's traces topic), --clickhouse DSN with --broker-profile FILE, or --profile FILE (saved by flexiflow plan profile)")
	}
	if p.tracesFrom != "" && p.clickhouseDSN != "" {
		return nil, errors.New("give --traces-from or --clickhouse, not both")
	}
	capacity := map[string]int{}
	for _, c := range p.capacity {
		var name string
		var n int
		i := strings.LastIndexByte(c, '=')
		if i < 1 {
			return nil, fmt.Errorf("--capacity %q: want MODEL=N", c)
		}
		name = c[:i]
		if _, err := fmt.Sscanf(c[i+1:], "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("--capacity %q: N must be a positive number of calls", c)
		}
		capacity[name] = n
	}
	opts := plan.ProfileOptions{MinTraces: p.minTraces, Capacity: capacity}
	var after time.Time
	if p.since > 0 {
		after = time.Now().Add(-p.since)
	}
	var broker plan.Broker
	if p.brokerProfile != "" {
		if err := readJSON(p.brokerProfile, &broker); err != nil {
			return nil, err
		}
	}
	if p.clickhouseDSN != "" {
		if p.brokerProfile == "" {
			return nil, errors.New("--clickhouse needs --broker-profile FILE: the broker's costs, measured by flexiflow plan calibrate --brokers B --out FILE")
		}
		chOpts, err := g.clickhouseOptions()
		if err != nil {
			return nil, err
		}
		n, err := openClickHouse(ctx, p.clickhouseDSN, chOpts)
		if err != nil {
			return nil, err
		}
		defer n.Close()
		traces, err := clickhouse.ProfileTraces(ctx, n, wf.Name, after)
		if err != nil {
			return nil, err
		}
		opts.Source = "ClickHouse table traces" + sinceWords(p.since)
		return plan.FromTraces(wf, traces, broker, opts)
	}
	kafka, err := g.kafkaConfig(p.tracesFrom, log)
	if err != nil {
		return nil, err
	}
	if err := stream.Ping(ctx, kafka); err != nil {
		return nil, err
	}
	if p.brokerProfile == "" {
		if broker, err = plan.Calibrate(ctx, kafka, plan.CalibrateOptions{}); err != nil {
			return nil, err
		}
	}
	recs, err := stream.ReadCommitted(ctx, kafka, wf.Topics.Traces)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", wf.Topics.Traces, err)
	}
	codec, err := schemas.NewTraceCodec()
	if err != nil {
		return nil, err
	}
	traces := make([]*schemas.Trace, 0, len(recs))
	bad := 0
	for _, r := range recs {
		t, err := codec.Decode(r.Value)
		if err != nil {
			bad++
			continue
		}
		if after.IsZero() || t.TsUs >= after.UnixMicro() {
			traces = append(traces, t)
		}
	}
	if bad > 0 {
		log.Warn("skipped records of the traces topic that are not traces", zap.String("topic", wf.Topics.Traces), zap.Int("records", bad))
	}
	opts.Source = fmt.Sprintf("%s on %s%s", wf.Topics.Traces, p.tracesFrom, sinceWords(p.since))
	return plan.FromTraces(wf, traces, broker, opts)
}

// readProfile reads a saved profile and checks that it profiles wf.
func readProfile(path string, wf *workflow.Workflow) (*plan.Profile, error) {
	var prof plan.Profile
	if err := readJSON(path, &prof); err != nil {
		return nil, err
	}
	if err := prof.Check(wf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &prof, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: not the JSON expected: %w", path, err)
	}
	return nil
}

func newPlanCmd(g *globals) *cobra.Command {
	var wfPath, objective, format, apply, out string
	var budget, rate, eventRate, perConsumer float64
	var slo, searchTime time.Duration
	var batches, iterations int
	var seed uint64
	var explain bool
	var src profileSource
	cmd := &cobra.Command{
		Use:   "plan --workflow FILE (--traces-from BROKERS | --profile FILE) [--objective throughput --budget-cores N | --objective cores --rate R --slo-p99 D]",
		Short: "Find partitions, consumers, workers and --max-poll for a workflow by simulating its deployment",
		Long: `Plan a workflow's deployment from what its traces say about its models.

The profile (per step and model: latency and its growth with records per
batch, pass probability over time, the retry mix and the cascade order the
policy settled on; and the broker's transaction, produce and fetch costs)
drives a discrete-event simulation of the deployed pipeline: partitions,
consumers per step, workers per consumer, transactions of at most --max-poll
batches, retry topics, feedback reports, model concurrency caps and server
capacity. A guided random search (Metropolis-Hastings, one knob changed per
proposal) looks for the configuration that does best:

  --objective throughput   the most delivered batches/s within --budget-cores
  --objective cores        the fewest cores that sustain --rate batches/s
                           with a p99 within --slo-p99

A consumer costs --cores-per-consumer cores. With no --rate, predictions are
for a backlog of --batches batches (a replay or catch-up); with --rate, for
batches arriving evenly at that rate. The plan prints beside the prediction
for today's defaults (the workflow's partitions, one consumer per step, a
worker per CPU, --max-poll 32); --explain says which step limits the
pipeline and why; --apply writes what an operator applies.

Check a plan against a real run with "flexiflow plan validate".`,
		Example: `  flexiflow plan --workflow examples/planner.yaml --traces-from kafka:9092 --budget-cores 6 --explain
  flexiflow plan --workflow wf.yaml --profile profile.json --objective cores --rate 200 --slo-p99 2s --format json > plan.json
  flexiflow plan --workflow wf.yaml --profile profile.json --budget-cores 8 --apply kustomize --out deploy/k8s/overlays/planned`,
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
			if apply != "" && out == "" {
				return errors.New("--apply needs --out DIR: the directory to write into")
			}
			l, err := compile(wfPath, log)
			if err != nil {
				return err
			}
			prof, err := src.load(cmd.Context(), g, l.wf, log)
			if err != nil {
				return err
			}
			if eventRate > 0 && l.wf.Source == nil {
				return fmt.Errorf("--event-rate is for a workflow with a source; workflow %q has none: give --rate in batches/s", l.wf.Name)
			}
			w := plan.Workload{Batches: batches, Rate: rate, EventRate: eventRate, CoresPerConsumer: perConsumer, Seed: seed}
			if eventRate > 0 {
				sim, err := plan.NewSimulator(prof, w)
				if err != nil {
					return err
				}
				rate = sim.Workload().Rate // the batches the source makes of the events
			}
			obj := plan.Objective{Kind: objective, BudgetCores: budget, CoresPerConsumer: perConsumer, Rate: rate, SLOP99Ms: float64(slo) / 1e6}
			if err := obj.Check(); err != nil {
				return err
			}
			pf, err := makePlan(l.wf, prof, obj, w, plan.SearchOptions{Iterations: iterations, Time: searchTime, Seed: seed})
			if err != nil {
				return err
			}
			if explain {
				pf.Explain = plan.Explain(prof, pf.Config, pf.Predicted, &pf.Default.Prediction, &pf.Default.Config)
			}
			if apply != "" {
				file := wfPath
				if file == "" {
					file = "WORKFLOW.yaml"
				}
				files, err := plan.Apply(apply, out, file, pf.Config, obj.CoresPerConsumer)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", strings.Join(files, ", "))
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), pf)
			}
			printPlan(cmd.OutOrStdout(), pf)
			if !pf.Feasible {
				return planMiss(pf)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	src.add(cmd, true)
	f.StringVar(&objective, "objective", plan.Throughput, "throughput (most batches/s within --budget-cores) or cores (fewest cores for --rate at --slo-p99)")
	f.Float64Var(&budget, "budget-cores", 0, "with --objective throughput: the cores the deployment may use (0: the default deployment's)")
	f.Float64Var(&rate, "rate", 0, "batches/s arriving evenly; with --objective cores, the rate to sustain (0: a backlog of --batches)")
	f.DurationVar(&slo, "slo-p99", 0, "the per-batch p99 latency the plan must meet, from arrival to output (0: none)")
	f.Float64Var(&eventRate, "event-rate", 0, "for a workflow with a source: events/s on its topic, batched as its source batches them (max_records, linger), instead of --rate")
	f.Float64Var(&perConsumer, "cores-per-consumer", 1, "cores one consumer costs (its pod's or container's CPU)")
	f.IntVar(&batches, "batches", 1000, "batches each simulation runs")
	f.IntVar(&iterations, "iterations", 3000, "search proposals at most")
	f.DurationVar(&searchTime, "search-time", 10*time.Second, "how long the search may run")
	f.Uint64Var(&seed, "seed", 1, "seed of the simulation and the search")
	f.BoolVar(&explain, "explain", false, "say in words which step limits the pipeline and why")
	f.StringVar(&apply, "apply", "", "write the plan as flags, compose (a docker compose override) or kustomize (an overlay) into --out")
	f.StringVar(&out, "out", "", "with --apply: the directory to write into")
	f.StringVar(&format, "format", "table", "table or json (the JSON is what plan validate --config reads)")
	atLeast(f, "batches", "10")
	atLeast(f, "iterations", "1")
	atLeast(f, "cores-per-consumer", "0.001")
	cmd.AddCommand(newPlanCalibrateCmd(g), newPlanProfileCmd(g), newPlanValidateCmd(g), newPlanPredictCmd(g))
	return cmd
}

// makePlan searches for the best configuration of wf and predicts the
// default beside it.
func makePlan(wf *workflow.Workflow, prof *plan.Profile, obj plan.Objective, w plan.Workload, so plan.SearchOptions) (*planFile, error) {
	sim, err := plan.NewSimulator(prof, w)
	if err != nil {
		return nil, err
	}
	w = sim.Workload() // as simulated, defaults filled in
	def := defaultConfig(wf)
	if obj.Kind == plan.Throughput && obj.BudgetCores == 0 {
		obj.BudgetCores = def.Cores(obj.CoresPerConsumer)
	}
	dp, err := sim.Run(def)
	if err != nil {
		return nil, err
	}
	so.Start = &def
	var names []string
	for _, s := range wf.Steps {
		names = append(names, s.Name)
	}
	space := plan.DefaultSpace()
	r, err := plan.Search(sim, names, space, obj, so)
	if err != nil {
		return nil, err
	}
	return &planFile{Workflow: wf.Name, Objective: obj, Workload: w, Config: r.Config, Predicted: r.Predicted, Feasible: r.Feasible, Cores: r.Cores,
		BestP99Ms: r.BestP99Ms, Default: planDefault{Prediction: dp, Config: def},
		Search:  planSearch{SpaceSize: space.Size(len(names)), Iterations: r.Iterations, Evaluated: r.Evaluated, ElapsedMs: float64(r.Elapsed) / 1e6},
		Profile: prof}, nil
}

// planMiss is the error of a plan that meets no constraint.
func planMiss(pf *planFile) error {
	o := pf.Objective
	switch {
	case o.SLOP99Ms > 0 && pf.BestP99Ms > o.SLOP99Ms:
		return fmt.Errorf("no configuration meets --slo-p99 %gms: the best p99 reachable is %.0f ms (shown above); raise the SLO, or make the slowest step's models faster", o.SLOP99Ms, pf.BestP99Ms)
	case o.Kind == plan.Cores:
		return fmt.Errorf("no configuration in the search space sustains --rate %g batches/s (the best above does %.0f): the rate is beyond what the models and broker allow", o.Rate, pf.Predicted.BatchesPerS)
	}
	return errors.New("no configuration meets the objective's constraints")
}

func printPlan(w io.Writer, pf *planFile) {
	fmt.Fprintf(w, "plan for workflow %s (%s", pf.Workflow, pf.Objective.Kind)
	if pf.Objective.BudgetCores > 0 {
		fmt.Fprintf(w, ", budget %g cores", pf.Objective.BudgetCores)
	}
	if pf.Objective.Rate > 0 {
		fmt.Fprintf(w, ", rate %g batches/s", pf.Objective.Rate)
	}
	if pf.Objective.SLOP99Ms > 0 {
		fmt.Fprintf(w, ", p99 ≤ %g ms", pf.Objective.SLOP99Ms)
	}
	fmt.Fprintf(w, "): searched %d of %.1e configurations in %.1f s\n\n", pf.Search.Evaluated, pf.Search.SpaceSize, pf.Search.ElapsedMs/1000)
	fmt.Fprintf(w, "%-10s %-14s %10s %8s %10s\n", "", "step", "consumers", "workers", "max-poll")
	for i, s := range pf.Config.Steps {
		d := pf.Default.Config.Steps[i]
		fmt.Fprintf(w, "%-10s %-14s %10d %8d %10d\n", "plan", s.Name, s.Consumers, s.Workers, s.MaxPoll)
		fmt.Fprintf(w, "%-10s %-14s %10d %8d %10d\n", "default", "", d.Consumers, d.Workers, d.MaxPoll)
	}
	fmt.Fprintf(w, "\npartitions: plan %d, default %d; cores: plan %g, default %g\n\n", pf.Config.Partitions, pf.Default.Config.Partitions,
		pf.Cores, pf.Default.Config.Cores(pf.Objective.CoresPerConsumer))
	fmt.Fprintf(w, "%-10s %12s %10s %10s  %s\n", "predicted", "batches/s", "p50 ms", "p99 ms", "bottleneck")
	fmt.Fprintf(w, "%-10s %12.1f %10.0f %10.0f  %s\n", "plan", pf.Predicted.BatchesPerS, pf.Predicted.P50Ms, pf.Predicted.P99Ms, pf.Predicted.Bottleneck)
	fmt.Fprintf(w, "%-10s %12.1f %10.0f %10.0f  %s\n", "default", pf.Default.BatchesPerS, pf.Default.P50Ms, pf.Default.P99Ms, pf.Default.Bottleneck)
	if pf.Explain != "" {
		fmt.Fprintf(w, "\n%s", pf.Explain)
	}
	for _, n := range pf.Profile.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func newPlanCalibrateCmd(g *globals) *cobra.Command {
	var brokers, out string
	var rounds int
	cmd := &cobra.Command{
		Use:   "calibrate --brokers B [--out FILE]",
		Short: "Measure the broker's costs to a stage: transaction commit, produce and fetch round trips",
		Long: `Measure, on the cluster at --brokers, what a stage waits on: an acknowledged
produce round trip, how long a committed record takes to reach a waiting
read_committed consumer, and a stage's transaction (poll, produce, flush,
commit with offsets): after a pause with 1 record, with 512 records, with a
record in each of 64 partitions, and back to back, producing at once after
the previous commit (the broker may still be writing its commit markers,
and the client retries after a backoff). It writes to its own topics,
flexiflow.calibrate.in (one partition) and .out64 (64). The JSON it prints (or
writes to --out) is what plan and plan profile take as --broker-profile.`,
		Example: `  flexiflow plan calibrate --brokers kafka:9092 --out broker.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			kafka, err := g.kafkaConfig(brokers, log)
			if err != nil {
				return err
			}
			if err := stream.Ping(cmd.Context(), kafka); err != nil {
				return err
			}
			b, err := plan.Calibrate(cmd.Context(), kafka, plan.CalibrateOptions{Rounds: rounds})
			if err != nil {
				return err
			}
			return writeOut(cmd, out, b)
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	f.StringVar(&out, "out", "", "write the JSON here instead of standard output")
	f.IntVar(&rounds, "rounds", 100, "measurements of each kind")
	atLeast(f, "rounds", "4")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

func writeOut(cmd *cobra.Command, out string, v any) error {
	if out == "" {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	fh, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeJSON(fh, v); err != nil {
		_ = fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", out)
	return nil
}

func newPlanProfileCmd(g *globals) *cobra.Command {
	var wfPath, out string
	var src profileSource
	cmd := &cobra.Command{
		Use:   "profile --workflow FILE --traces-from BROKERS [--out profile.json]",
		Short: "Profile a workflow's models from its traces (and calibrate the broker) and save it for offline plans",
		Long: `Read the workflow's traces topic and profile, per step and model, the latency
distribution and its growth with records per batch, the pass probability over
time, the retry mix and the cascade order the policy settled on; calibrate the
broker (or read --broker-profile). A model the cascade reaches needs
--min-traces traces. Save it with --out and plan offline with plan --profile.`,
		Example: `  flexiflow plan profile --workflow examples/planner.yaml --traces-from kafka:9092 --out profile.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			l, err := compile(wfPath, log)
			if err != nil {
				return err
			}
			prof, err := src.load(cmd.Context(), g, l.wf, log)
			if err != nil {
				return err
			}
			return writeOut(cmd, out, prof)
		},
	}
	cmd.Flags().StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	src.add(cmd, false)
	cmd.Flags().StringVar(&out, "out", "", "write the profile here instead of standard output")
	return cmd
}

func newPlanPredictCmd(g *globals) *cobra.Command {
	var wfPath, profilePath, configPath string
	var batches, size int
	var rate, perConsumer, shared float64
	var seed uint64
	cmd := &cobra.Command{
		Use:   "predict --workflow FILE --profile FILE --config PLAN.json [--batches N] [--rate R]",
		Short: "Simulate one configuration and print its prediction, without searching",
		Long: `Simulate the configuration in PLAN.json (what plan --format json prints, or
any file with a "config" object) under the profile, fed --batches batches
(all at once, or at --rate batches/s), and print the prediction as JSON:
what-if questions about a deployment, answered offline.`,
		Example: `  flexiflow plan predict --workflow examples/planner.yaml --profile profile.json --config plan.json --batches 5000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			l, err := compile(wfPath, log)
			if err != nil {
				return err
			}
			prof, err := readProfile(profilePath, l.wf)
			if err != nil {
				return err
			}
			var pf planFile
			if err := readJSON(configPath, &pf); err != nil {
				return err
			}
			if err := checkConfig(pf.Config, l); err != nil {
				return fmt.Errorf("%s: %w", configPath, err)
			}
			sim, err := plan.NewSimulator(prof, plan.Workload{Batches: batches, Rate: rate, RecordsPerBatch: float64(size), CoresPerConsumer: perConsumer,
				SharedCores: shared, Seed: seed})
			if err != nil {
				return err
			}
			p, err := sim.Run(pf.Config)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), p)
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	f.StringVar(&profilePath, "profile", "", "the profile to simulate with (plan profile --out) (required)")
	f.StringVar(&configPath, "config", "", "the configuration (required)")
	f.IntVar(&batches, "batches", 1000, "batches to feed")
	f.IntVar(&size, "batch-size", 0, "records per batch (0: the profile's)")
	f.Float64Var(&rate, "rate", 0, "batches/s arriving evenly (0: all at once)")
	f.Float64Var(&perConsumer, "cores-per-consumer", 1, "cores one consumer has, for models that compute")
	f.Float64Var(&shared, "shared-cores", 0, "put every consumer on this many cores of one process, as plan validate runs them (0: --cores-per-consumer each)")
	f.Uint64Var(&seed, "seed", 1, "seed of the simulation")
	atLeast(f, "batches", "2")
	_ = cmd.MarkFlagRequired("profile")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func sinceWords(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf(", the last %s", d)
}
