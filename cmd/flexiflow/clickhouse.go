package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/sinks/clickhouse"
	"github.com/flexiflow/flexiflow/stages/ops"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// The ClickHouse commands: migrate, sink, drift, switches and trace. Each
// takes --clickhouse DSN (or FLEXIFLOW_CLICKHOUSE); the password in a DSN is
// never logged or printed.

const dsnHelp = "ClickHouse DSN, clickhouse://USER:PASSWORD@HOST:9000/DATABASE (or FLEXIFLOW_CLICKHOUSE)"

func newClickHouseCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newMigrateCmd(g), newSinkCmd(g), newDriftCmd(g), newSwitchesCmd(g), newTraceCmd(g)}
}

func newMigrateCmd(g *globals) *cobra.Command {
	var dsn string
	var print bool
	cmd := &cobra.Command{
		Use:   "migrate --clickhouse DSN",
		Short: "Create or upgrade the ClickHouse tables and views traces go into",
		Long: fmt.Sprintf(`Apply FlexiFlow's versioned ClickHouse schema (version %d): the traces
table (ReplacingMergeTree ordered by workflow, step, time and attempt id,
LowCardinality names, 90-day TTL), the per-minute aggregate tables with
their materialized views (attempts, passes and latency quantiles per step,
model and minute; input feature summaries), and flexiflow_schema_version,
which records what was applied. Idempotent: run it again after upgrading
flexiflow; it applies only what is missing.

Examples:
  flexiflow migrate --clickhouse clickhouse://flexiflow:secret@localhost:9000/flexiflow
  flexiflow migrate --print > schema.sql      # the SQL, without connecting`, clickhouse.LatestVersion()),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if print {
				s, err := clickhouse.MigrationScript()
				if err != nil {
					return err
				}
				_, err = io.WriteString(cmd.OutOrStdout(), s)
				return err
			}
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			defer log.Sync()
			chOpts, err := g.clickhouseOptions()
			if err != nil {
				return err
			}
			n, err := openClickHouse(cmd.Context(), dsn, chOpts)
			if err != nil {
				return err
			}
			defer n.Close()
			a, err := clickhouse.Migrate(cmd.Context(), n)
			if err != nil {
				return fmt.Errorf("migrating ClickHouse at %s: %w", n.Where, err)
			}
			if len(a.Files) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "ClickHouse at %s: schema already at version %d, nothing to do\n", n.Where, a.To)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ClickHouse at %s: schema version %d → %d (applied %s)\n", n.Where, a.From, a.To, strings.Join(a.Files, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "clickhouse", "", dsnHelp)
	cmd.Flags().BoolVar(&print, "print", false, "write the schema's SQL to stdout and exit, without connecting")
	return cmd
}

var errNoDSN = errors.New("--clickhouse is required: give clickhouse://USER:PASSWORD@HOST:9000/DATABASE (or set FLEXIFLOW_CLICKHOUSE)")

// openClickHouse connects to the DSN.
func openClickHouse(ctx context.Context, dsn string, opts []clickhouse.Option) (*clickhouse.Native, error) {
	if dsn == "" {
		return nil, errNoDSN
	}
	return clickhouse.OpenNative(ctx, dsn, opts...)
}

func newSinkCmd(g *globals) *cobra.Command {
	var o sinkFlags
	var wfPath, brokers, metricsAddr string
	cmd := &cobra.Command{
		Use:   "sink --workflow FILE --brokers ADDRS --clickhouse DSN",
		Short: "Move a workflow's attempt traces from Kafka into ClickHouse",
		Long: `Consume <workflow>.traces as the consumer group <workflow>.traces.clickhouse
and insert every trace into ClickHouse in batches (flushed at --batch-rows
rows or every --flush-interval). Offsets are committed after ClickHouse
acknowledged the rows: delivery is at least once, and replays leave no
duplicate rows (the table deduplicates on the attempt id). When ClickHouse is
down or slow the sink pauses consumption, retries with backoff and resumes;
the stages never wait for it and traces wait in Kafka. Run several for more
throughput: they share the topic's partitions.

At start it waits up to --connect-timeout for ClickHouse to answer; a
refused login or a schema older than this binary (run flexiflow migrate
first) stops it at once with what to do.

Example:
  flexiflow sink --workflow digits.yaml --brokers kafka:9092 \
    --clickhouse clickhouse://flexiflow:secret@clickhouse:9000/flexiflow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			defer log.Sync()
			if wfPath == "" {
				return errors.New("--workflow is required: the workflow file whose traces to store")
			}
			l, err := load(cmd.Context(), g, wfPath, brokers, false, log)
			if err != nil {
				return err
			}
			defer l.close()
			reg := ops.NewRegistry()
			if o.chOpts, err = g.clickhouseOptions(); err != nil {
				return err
			}
			s, n, err := startSink(cmd.Context(), l.wf, l.kafka, o, g.connectTimeout, reg, log)
			if err != nil {
				return err
			}
			defer n.Close()
			if metricsAddr != "" {
				ready := func() bool { return !s.Stats().Paused }
				if _, err := ops.Serve(cmd.Context(), metricsAddr, reg, ready, log); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sink: %s → ClickHouse at %s (Ctrl-C to stop)\n", l.wf.Topics.Traces, n.Where)
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file (its name gives the traces topic)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port]")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz (ready while inserts succeed) on this host:port")
	o.register(f)
	return cmd
}

// sinkFlags configure a sink from the command line.
type sinkFlags struct {
	dsn       string
	batchRows int
	flush     time.Duration
	chOpts    []clickhouse.Option // from the global ClickHouse flags
}

func (o *sinkFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.dsn, "clickhouse", "", dsnHelp)
	f.IntVar(&o.batchRows, "batch-rows", 5000, "insert once this many traces are pending")
	f.DurationVar(&o.flush, "flush-interval", time.Second, "insert pending traces at least this often")
}

// startSink connects to ClickHouse (waiting while it is unreachable, up to
// wait: the --connect-timeout), checks the schema, makes sure the traces topic
// exists, and returns a sink ready to Run, with its metrics on reg (nil:
// none), and its ClickHouse connection, for the caller to close.
func startSink(ctx context.Context, wf *workflow.Workflow, kafka stream.Config, o sinkFlags, wait time.Duration, reg *prometheus.Registry, log *zap.Logger) (*clickhouse.Sink, *clickhouse.Native, error) {
	if o.dsn == "" {
		return nil, nil, errNoDSN
	}
	n, err := clickhouse.DialNative(ctx, o.dsn, wait, log, o.chOpts...)
	if err != nil {
		return nil, nil, err
	}
	if err := clickhouse.CheckSchema(ctx, n); err != nil {
		_ = n.Close() // the schema check's error is the one to report
		return nil, nil, fmt.Errorf("ClickHouse at %s: %w", n.Where, err)
	}
	if err := stream.EnsureTopics(ctx, kafka, wf.Partitions, wf.Topics.Traces); err != nil {
		// Not fatal: the topic may exist and the sink's user may not create topics.
		log.Warn("could not make sure the traces topic exists; consuming it anyway", zap.String("topic", wf.Topics.Traces), zap.Error(err))
	}
	s, err := clickhouse.NewSink(kafka, n, clickhouse.SinkOptions{
		Topic: wf.Topics.Traces, BatchRows: o.batchRows, FlushInterval: o.flush, Log: log.Named("sink"),
	})
	if err != nil {
		_ = n.Close()
		return nil, nil, err
	}
	if reg != nil {
		labels := prometheus.Labels{"workflow": wf.Name}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flexiflow_sink_rows_inserted_total", Help: "Traces ClickHouse acknowledged (replays included).", ConstLabels: labels},
				func() float64 { return float64(s.Stats().Inserted) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flexiflow_sink_insert_failures_total", Help: "Failed insert attempts (each retried).", ConstLabels: labels},
				func() float64 { return float64(s.Stats().Failures) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flexiflow_sink_paused", Help: "1 while consumption is paused because inserts fail.", ConstLabels: labels},
				func() float64 {
					if s.Stats().Paused {
						return 1
					}
					return 0
				}),
		)
	}
	log.Info("clickhouse sink ready", zap.String("clickhouse", n.Where), zap.String("topic", wf.Topics.Traces))
	return s, n, nil
}

// backgroundSink runs a sink next to `flexiflow demo` or `run`.
type backgroundSink struct {
	s      *clickhouse.Sink
	cancel context.CancelFunc
	done   chan error
	close  func()
	once   sync.Once
	err    error
	// For messages: the server (no password), the workflow and drift
	// windows that suit it.
	where, workflow, windows string
}

// runSinkInBackground starts a sink with the default batching into dsn,
// with the global ClickHouse flags, after applying the schema when migrate
// is set.
func runSinkInBackground(ctx context.Context, g *globals, wf *workflow.Workflow, kafka stream.Config, dsn string, migrate bool, log *zap.Logger) (*backgroundSink, error) {
	chOpts, err := g.clickhouseOptions()
	if err != nil {
		return nil, err
	}
	o := sinkFlags{dsn: dsn, chOpts: chOpts}
	if migrate {
		n, err := openClickHouse(ctx, o.dsn, o.chOpts)
		if err != nil {
			return nil, err
		}
		_, err = clickhouse.Migrate(ctx, n)
		_ = n.Close() // read-only use is over; the migration's error matters
		if err != nil {
			return nil, fmt.Errorf("migrating ClickHouse at %s: %w", n.Where, err)
		}
	}
	s, n, err := startSink(ctx, wf, kafka, o, g.connectTimeout, nil, log)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b := &backgroundSink{s: s, cancel: cancel, done: make(chan error, 1), close: func() { _ = n.Close() }, where: n.Where, workflow: wf.Name}
	go func() { b.done <- s.Run(sctx) }()
	return b, nil
}

// drain waits until the sink has caught up (nothing pending and no new
// trace for quiet), up to limit, then stops it.
func (b *backgroundSink) drain(ctx context.Context, quiet, limit time.Duration) (clickhouse.SinkStats, error) {
	b.once.Do(func() {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			st := b.s.Stats()
			if st.Pending == 0 && !st.LastRecord.IsZero() && time.Since(st.LastRecord) > quiet && !st.Paused {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.cancel()
		b.err = <-b.done
		b.close()
	})
	return b.s.Stats(), b.err
}

func newDriftCmd(g *globals) *cobra.Command {
	var q queryFlags
	var step, ref, recent string
	var threshold float64
	cmd := &cobra.Command{
		Use:   "drift --workflow W --step S --reference WINDOW --recent WINDOW",
		Short: "Per input feature, how far a step's recent input drifted from a reference window",
		Long: `Compare the input a step saw in two windows, per numeric input feature:
PSI (population stability index), KS (largest CDF difference at the bin
edges) and JS (Jensen–Shannon divergence, base 2), flagged when PSI is above
--threshold (0.1 is a moderate shift, 0.2 a significant one).

Each trace summarises its batch's feature values by count, mean, min, max
and the 5th/25th/50th/75th/95th percentiles. A batch's distribution is the
piecewise-linear CDF through those points; a window's is the count-weighted
mixture of its batches'; bins are cut at the reference window's averaged
percentiles. Each batch counts once (its first attempt at the step).

` + clickhouse.WindowHelp + `

Examples:
  flexiflow drift --workflow digits --step classify --reference -2h/-1h --recent -10m/now
  flexiflow drift --workflow digits --step denoise --reference batches:0-400 --recent batches:800- --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if step == "" {
				return errors.New("--step is required")
			}
			if ref == "" || recent == "" {
				return errors.New("--reference and --recent are required, e.g. --reference -2h/-1h --recent -10m/now or --reference batches:0-400 --recent batches:800-")
			}
			refW, err := clickhouse.ParseWindow(ref, now)
			if err != nil {
				return fmt.Errorf("--reference: %w", err)
			}
			recW, err := clickhouse.ParseWindow(recent, now)
			if err != nil {
				return fmt.Errorf("--recent: %w", err)
			}
			return q.run(cmd, step, func(ctx context.Context, n *clickhouse.Native, wf string) (*clickhouse.Result, error) {
				return clickhouse.DriftQuery(ctx, n, clickhouse.DriftParams{Workflow: wf, Step: step, Reference: refW, Recent: recW, Threshold: threshold})
			})
		},
	}
	q.register(cmd, g)
	cmd.Flags().StringVar(&step, "step", "", "the step whose input to compare")
	cmd.Flags().StringVar(&ref, "reference", "", "the reference window (see above)")
	cmd.Flags().StringVar(&recent, "recent", "", "the window to compare with it")
	cmd.Flags().Float64Var(&threshold, "threshold", 0.2, "flag features whose PSI is above this")
	return cmd
}

func newSwitchesCmd(g *globals) *cobra.Command {
	var q queryFlags
	var step, since string
	cmd := &cobra.Command{
		Use:   "switches --workflow W [--step S] [--since T]",
		Short: "When each step's top-ranked model changed, and how the step did before and after",
		Long: `The timeline of each step's top-ranked model (the traces' leader: the model
with the best estimate at decision time). One row per period a model led,
from the attempt where it took over: the batch, the previous leader, and for
the period before and after the switch the attempts, first-try pass rate,
pass rate over all attempts, mean model latency per attempt, and model time
per batch (what serving a batch cost, retries included), in ms.

--since is an RFC 3339 time (2026-11-23T10:00:00Z), now, or relative (-2h, -1d).

Examples:
  flexiflow switches --workflow digits
  flexiflow switches --workflow digits --step classify --since -1h --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t time.Time
			if since != "" {
				var err error
				if t, err = clickhouse.ParseInstant(since, time.Now()); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			return q.run(cmd, step, func(ctx context.Context, n *clickhouse.Native, wf string) (*clickhouse.Result, error) {
				return clickhouse.SwitchesQuery(ctx, n, wf, step, t)
			})
		},
	}
	q.register(cmd, g)
	cmd.Flags().StringVar(&step, "step", "", "only this step (default: every step)")
	cmd.Flags().StringVar(&since, "since", "", "only switches at or after this time")
	return cmd
}

func newTraceCmd(g *globals) *cobra.Command {
	var q queryFlags
	cmd := &cobra.Command{
		Use:   "trace --workflow W BATCH_ID",
		Short: "One batch's journey: every attempt at every step, in order",
		Long: `List every attempt on one batch: when, at which step, which model at which
rank, its latency, how many records passed, the verdict, the failed
assertions, the error and where the batch went next (next step, retry, dlq).
BATCH_ID is the flexiflow-batch-id header (b000042 in the demo).

Example:
  flexiflow trace --workflow digits b000042`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return q.run(cmd, "", func(ctx context.Context, n *clickhouse.Native, wf string) (*clickhouse.Result, error) {
				return clickhouse.TraceQuery(ctx, n, wf, args[0])
			})
		},
	}
	q.register(cmd, g)
	return cmd
}

// queryFlags are what every query command takes.
type queryFlags struct {
	dsn, workflow, format string
	g                     *globals // the ClickHouse TLS and password settings
}

func (q *queryFlags) register(cmd *cobra.Command, g *globals) {
	q.g = g
	cmd.Flags().StringVar(&q.dsn, "clickhouse", "", dsnHelp)
	cmd.Flags().StringVar(&q.workflow, "workflow", "", "the workflow's name, or its workflow file")
	cmd.Flags().StringVar(&q.format, "format", "table", "output: table, json or csv")
}

// run checks the flags, connects, checks the schema and the names, runs
// the query and writes its result.
func (q *queryFlags) run(cmd *cobra.Command, step string, query func(context.Context, *clickhouse.Native, string) (*clickhouse.Result, error)) error {
	switch q.format {
	case clickhouse.FormatTable, clickhouse.FormatJSON, clickhouse.FormatCSV:
	default:
		return fmt.Errorf("--format %q: use table, json or csv", q.format)
	}
	wf, err := workflowName(q.workflow, step)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	chOpts, err := q.g.clickhouseOptions()
	if err != nil {
		return err
	}
	n, err := openClickHouse(ctx, q.dsn, chOpts)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := clickhouse.CheckSchema(ctx, n); err != nil {
		return fmt.Errorf("ClickHouse at %s: %w", n.Where, err)
	}
	if err := clickhouse.CheckNames(ctx, n, wf, step); err != nil {
		return err
	}
	res, err := query(ctx, n, wf)
	if err != nil {
		return err
	}
	return res.Write(cmd.OutOrStdout(), q.format)
}

// workflowName accepts a workflow's name or its file; with a file, step
// (when given) must be one of its steps.
func workflowName(arg, step string) (string, error) {
	if arg == "" {
		return "", errors.New("--workflow is required: the workflow's name (e.g. digits) or its file")
	}
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		wf, err := workflow.Load(arg)
		if err != nil {
			return "", err
		}
		if step != "" {
			if _, err := wf.Step(step); err != nil {
				return "", err
			}
		}
		return wf.Name, nil
	}
	if strings.ContainsAny(arg, "/\\") || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return "", fmt.Errorf("--workflow %s: no such file; give the workflow's name or an existing workflow file", arg)
	}
	return arg, nil
}

// startDemoSink runs the sink next to `flexiflow demo --clickhouse DSN`: it
// applies the schema (idempotent), starts the embedded broker itself when
// o.Brokers is empty (so the sink and the demo share it) and consumes the
// demo workflow's traces. Without a DSN it does nothing. The returned
// function stops the broker it started.
func startDemoSink(ctx context.Context, g *globals, o *demo.Options, dsn string, out io.Writer, log *zap.Logger) (*backgroundSink, func(), error) {
	noop := func() {}
	if dsn == "" {
		return nil, noop, nil
	}
	text := demo.WorkflowYAML()
	if o.Name != "" {
		text = regexp.MustCompile(`(?m)^workflow: digits$`).ReplaceAll(text, []byte("workflow: "+o.Name))
	}
	wf, err := workflow.Parse(demo.WorkflowFile, text)
	if err != nil {
		return nil, noop, err
	}
	stop := noop
	if len(o.Brokers) == 0 {
		b, err := stream.StartEmbedded("127.0.0.1:0", wf.Partitions)
		if err != nil {
			return nil, noop, err
		}
		o.Brokers, stop = b.Addrs(), b.Close
		fmt.Fprintf(out, "embedded Kafka broker on %s\n", o.Brokers[0])
	}
	kafka, err := g.kafkaConfig(strings.Join(o.Brokers, ","), log)
	if err != nil {
		stop()
		return nil, noop, err
	}
	bs, err := runSinkInBackground(ctx, g, wf, kafka, dsn, true, log)
	if err != nil {
		stop()
		return nil, noop, err
	}
	third := max(o.Batches, 3) / 3
	bs.windows = fmt.Sprintf("--reference batches:0-%d --recent batches:%d-", third, 2*third)
	fmt.Fprintf(out, "traces of %s also go to ClickHouse at %s\n", wf.Name, bs.where)
	return bs, stop, nil
}

// startRunSink runs the sink next to `flexiflow run --clickhouse DSN`
// (nil without a DSN). The schema must be current.
func startRunSink(ctx context.Context, g *globals, l *loaded, dsn string, log *zap.Logger) (*backgroundSink, error) {
	if dsn == "" {
		return nil, nil
	}
	bs, err := runSinkInBackground(ctx, g, l.wf, l.kafka, dsn, false, log)
	if err != nil {
		return nil, err
	}
	bs.windows = "--reference -2h/-1h --recent -1h/now"
	log.Info("traces also go to ClickHouse", zap.String("clickhouse", bs.where))
	return bs, nil
}

// finish waits for the sink to catch up (at most limit) and says what it
// stored. Nil-safe.
func (b *backgroundSink) finish(ctx context.Context, out io.Writer, limit time.Duration) error {
	if b == nil {
		return nil
	}
	st, err := b.drain(ctx, 1500*time.Millisecond, limit)
	if err != nil {
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	fmt.Fprintf(out, "\nClickHouse at %s: %d traces inserted (%d inserts)", b.where, st.Inserted, st.Flushes)
	if st.Pending > 0 || st.Paused {
		fmt.Fprintf(out, " (%d not inserted: ClickHouse did not accept them in time)", st.Pending)
	}
	fmt.Fprintf(out, "; ask it:\n  flexiflow switches --workflow %s --clickhouse DSN\n  flexiflow drift --workflow %s --step STEP %s --clickhouse DSN\n",
		b.workflow, b.workflow, b.windows)
	return nil
}
