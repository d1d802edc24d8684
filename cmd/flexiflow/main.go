// Command flexiflow runs multi-step ML workflows over Kafka, switching each
// step's model when the current one degrades.
//
// Run `flexiflow --help` for the commands, and `flexiflow demo` to watch a
// workflow run on an embedded broker with no services installed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(execute()) }

// execute runs the command line and returns the process's exit code.
func execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// Stopped by a signal before the work started: not a failure.
			fmt.Fprintln(os.Stderr, "stopped:", err)
			return 0
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// globals are the flags every command shares.
type globals struct {
	logLevel       string
	connectTimeout time.Duration
	kafka          kafkaFlags // TLS and SASL (config.go)
	clickhouse     clickhouseFlags
	registry       registryFlags // Schema Registry (registry.go)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "flexiflow",
		Short: "Run multi-step ML workflows over Kafka with automatic model switching",
		Long: `FlexiFlow runs each step of an ML workflow as its own Kafka consumer group.
For every batch (one Kafka record of Avro records) a step asks its bandit
which model to try first, runs it, checks the step's assertions (CEL), and
sends a passing batch to the next step's topic. A failing batch goes to the
step's retry topic, where the next-ranked model takes it; when no model is
left it goes to the step's dead-letter topic with the reason. Every attempt
is traced to <workflow>.traces. The bandit learns each model's pass rate and
cost as data drifts, so the step switches models on its own.

Start here:
  flexiflow demo                        watch a real workflow on an embedded broker
  flexiflow demo --print-workflow       see the workflow file the demo runs
  flexiflow run my-workflow.yaml        run your workflow (embedded broker)
  flexiflow stage --workflow F --step S --brokers host:9092
                                        deploy one step on its own`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default: warn for demo, info otherwise)")
	root.PersistentFlags().DurationVar(&g.connectTimeout, "connect-timeout", 15*time.Second, "how long to wait for Kafka brokers to answer at start")
	atLeast(root.PersistentFlags(), "connect-timeout", "1ms")
	root.AddCommand(newDemoCmd(g), newRunCmd(g), newStageCmd(g), newProduceCmd(g), newBrokerCmd(g), newVersionCmd(), newBenchCmd(g), newReferenceCmd(), newEdgeCmd(g, ingestRole), newEdgeCmd(g, egressRole), newConsumeCmd(g), newSchemaCmd(g), newDLQCmd(g))
	root.AddCommand(newClickHouseCmds(g)...)
	root.AddCommand(newPlanCmd(g))
	configure(root, g) // --config, FLEXIFLOW_* environment, Kafka security, probe
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "flexiflow", version) },
	}
}

// logger builds the structured logger; logs go to stderr so that a
// command's own output (tables, JSON) stays clean on stdout.
func (g *globals) logger(defaultLevel string) (*zap.Logger, error) {
	level := g.logLevel
	if level == "" {
		level = defaultLevel
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Encoding = "console"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// splitBrokers turns "a:1,b:2" into its addresses.
func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
