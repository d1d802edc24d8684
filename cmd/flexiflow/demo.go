package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/bandit/sim"
	"github.com/flexiflow/flexiflow/examples/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var o demo.Options
	var brokers, summaryJSON, clickhouseDSN, outcomes string
	var printWorkflow bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the built-in denoise → classify workflow on drifting digit images",
		Long: `Run a real two-step ML workflow end to end and watch it switch models.

With no --brokers, an embedded Kafka broker starts in this process. The demo
creates the workflow's topics, starts one consumer group per step, produces a
stream of handwritten-digit batches whose corruption grows phase by phase
(clean → noisy → very noisy → ...), and prints progress every second and
every switch of a step's top-ranked model as it happens. When every batch is
delivered or dead-lettered it prints a per-step summary: batches in,
delivered, dead-lettered, attempts per batch, each model's share of the
batches in each phase, every switch with the estimates that caused it, and
the accuracy of the delivered predictions per phase.

Examples:
  flexiflow demo
  flexiflow demo --batches 3000 --summary-json summary.json
  flexiflow demo --brokers 127.0.0.1:9092      # against your own Kafka
  flexiflow demo --print-workflow > digits.yaml # the workflow file it runs
  flexiflow demo --clickhouse clickhouse://flexiflow:secret@localhost:9000/flexiflow
  flexiflow demo --outcomes bench/tables/digits-drift.csv  # the run's regret against the oracle`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printWorkflow {
				text := demo.WorkflowYAML()
				if o.Trap {
					text = demo.TrapWorkflowYAML()
				}
				_, err := cmd.OutOrStdout().Write(text)
				return err
			}
			if o.Batches < 1 {
				return fmt.Errorf("--batches must be at least 1, got %d", o.Batches)
			}
			var table *sim.Table
			if outcomes != "" {
				t, err := readOutcomeTable(outcomes)
				if err != nil {
					return err
				}
				table = t
				if table.Items < o.Batches {
					return fmt.Errorf("--outcomes %s: %d items, fewer than the %d batches to price; make it with flexiflow bench outcomes --batches %d", outcomes, table.Items, o.Batches, o.Batches)
				}
			}
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			o.Brokers, o.Log, o.Progress = splitBrokers(brokers), log, cmd.OutOrStdout()
			if o.Kafka, err = g.kafkaConfig(brokers, log); err != nil {
				return err
			}
			sink, stopBroker, err := startDemoSink(cmd.Context(), g, &o, clickhouseDSN, cmd.OutOrStdout(), log)
			if err != nil {
				return err
			}
			defer stopBroker()
			report, err := demo.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			report.WriteTable(cmd.OutOrStdout())
			if table != nil {
				if report.Priced, err = priceRun(table, report); err != nil {
					return err
				}
				writePriced(cmd.OutOrStdout(), report.Priced)
			}
			if err := sink.finish(cmd.Context(), cmd.OutOrStdout(), time.Minute); err != nil {
				return err
			}
			if summaryJSON != "" {
				b, err := json.MarshalIndent(report, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(summaryJSON, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("writing --summary-json: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\nsummary written to %s\n", summaryJSON)
			}
			if report.Lost > 0 || report.Duplicates > 0 {
				return fmt.Errorf("%d batches lost and %d duplicated: this is a bug, please report it with the summary", report.Lost, report.Duplicates)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Batches, "batches", 1200, "batches to produce")
	f.IntVar(&o.BatchSize, "batch-size", 32, "digit images per batch")
	f.Uint64Var(&o.Seed, "seed", 1, "seed for the input stream")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port]; empty starts the embedded broker")
	f.StringVar(&o.Name, "name", "", "rename the workflow (its topics and groups), e.g. to run again on a cluster with an earlier run's topics")
	f.StringVar(&clickhouseDSN, "clickhouse", "", "also store every trace in ClickHouse (clickhouse://USER:PASSWORD@HOST:9000/DB; the schema is applied)")
	f.StringVar(&summaryJSON, "summary-json", "", "also write the summary as JSON to this file")
	f.StringVar(&outcomes, "outcomes", "", "outcome table of the same batches (bench outcomes --out, with --workflow-trap for the trap): price the run's decisions with it and compare them with its oracle and static-best")
	f.BoolVar(&printWorkflow, "print-workflow", false, "print the demo's workflow file and exit")
	f.BoolVar(&o.Trap, "workflow-trap", false, "run the trap workflow: denoise checks only the pixel range, so its cheapest model always passes there and hurts classify in the noisy phases")
	f.StringVar(&o.Policy, "policy", "", "rank every step's models with this policy instead of the workflow's ("+strings.Join(bandit.Names(), ", ")+")")
	f.StringToStringVar(&o.PolicyParams, "policy-param", nil, "set a parameter of every step's policy, over the workflow's: NAME=VALUE, repeatable (e.g. overhead_ms=0 to rank on model time alone; docs/reference/workflow.md lists each policy's)")
	f.DurationVar(&o.Timeout, "timeout", 0, "give up if the batches have not all finished by then (default 10m)")
	return cmd
}
