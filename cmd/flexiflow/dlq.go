package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stream"
)

// deadLetterRecord is one record of a dead-letter topic, as dlq list shows it.
type deadLetterRecord struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`     // "source" for the source's dead letters
	BatchID   *string   `json:"batch_id"` // null for a source dead letter
	Reason    string    `json:"reason"`
	Records   int       `json:"records"` // events it holds
	Keys      []*string `json:"keys"`    // the events' keys, in order (null: no key)
	Replayed  bool      `json:"replayed"`

	rec   *kgo.Record
	batch *schemas.Batch
	step  *stages.Step
}

// dlqFilter is what dlq list and replay select by.
type dlqFilter struct {
	step, since, reason string
	batches             []string
}

func (f *dlqFilter) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.step, "step", "", "only this step's dead letters (source: the source's)")
	fl.StringVar(&f.since, "since", "", "only dead letters written since then: a duration back from now (1h, 30m) or an RFC 3339 time")
	fl.StringVar(&f.reason, "reason", "", "only dead letters whose reason matches this regular expression")
	fl.StringSliceVar(&f.batches, "batch", nil, "only these batch ids (repeat, or comma-separate)")
}

func (f *dlqFilter) match(d *deadLetterRecord, re *regexp.Regexp, since time.Time) bool {
	if f.step != "" && d.Step != f.step {
		return false
	}
	if !since.IsZero() && d.Time.Before(since) {
		return false
	}
	if re != nil && !re.MatchString(d.Reason) {
		return false
	}
	if len(f.batches) > 0 && (d.BatchID == nil || !slices.Contains(f.batches, *d.BatchID)) {
		return false
	}
	return true
}

// replayedTopic records which dead letters dlq replay sent back.
func replayedTopic(l *loaded) string { return l.wf.Name + ".dlq.replayed" }

func dlqPosition(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

// readDeadLetters reads the workflow's dead-letter topics and selects.
func readDeadLetters(ctx context.Context, l *loaded, f dlqFilter) ([]*deadLetterRecord, error) {
	var re *regexp.Regexp
	if f.reason != "" {
		var err error
		if re, err = regexp.Compile(f.reason); err != nil {
			return nil, fmt.Errorf("--reason: %w", err)
		}
	}
	var since time.Time
	if f.since != "" {
		if d, err := time.ParseDuration(strings.TrimPrefix(f.since, "-")); err == nil {
			since = time.Now().Add(-d)
		} else if since, err = time.Parse(time.RFC3339, f.since); err != nil {
			return nil, fmt.Errorf("--since %q: give a duration (1h) or an RFC 3339 time (2026-12-03T10:00:00Z)", f.since)
		}
	}
	if f.step != "" && f.step != "source" {
		if _, err := l.wf.Step(f.step); err != nil {
			return nil, err
		}
	}
	byTopic := map[string]*stages.Step{}
	var topics []string
	if l.wf.Source != nil {
		topics = append(topics, l.wf.Source.DLQ)
	}
	for _, s := range l.steps {
		byTopic[s.Spec.Topics.DLQ] = s
		topics = append(topics, s.Spec.Topics.DLQ)
	}
	recs, err := stream.ReadCommitted(ctx, l.kafka, topics...) // reading creates nothing: a missing topic holds none
	if err != nil {
		return nil, err
	}
	done, err := replayedSet(ctx, l)
	if err != nil {
		return nil, err
	}
	var out []*deadLetterRecord
	for _, r := range recs {
		d := &deadLetterRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, Reason: stream.Header(r, stream.HeaderError), rec: r, Keys: []*string{}}
		d.Replayed = done[dlqPosition(r.Topic, r.Partition, r.Offset)]
		if s, ok := byTopic[r.Topic]; ok {
			d.Step, d.step = s.Spec.Name, s
			id := stream.Header(r, stream.HeaderBatchID)
			if b, err := s.In.Decode(r.Value); err == nil {
				d.batch, d.Records, id = b, len(b.Records), b.ID
				for _, e := range b.Events {
					d.Keys = append(d.Keys, keyOf(e.Key))
				}
			}
			d.BatchID = &id
		} else {
			d.Step, d.Records, d.Keys = "source", 1, []*string{keyOf(r.Key)}
		}
		if f.match(d, re, since) {
			out = append(out, d)
		}
	}
	return out, nil
}

func keyOf(k []byte) *string {
	if k == nil {
		return nil
	}
	s := string(k)
	return &s
}

// replayedSet is the positions of the dead letters already replayed.
func replayedSet(ctx context.Context, l *loaded) (map[string]bool, error) {
	recs, err := stream.ReadCommitted(ctx, l.kafka, replayedTopic(l))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range recs {
		out[string(r.Key)] = true
	}
	return out, nil
}

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, inspect and replay a workflow's dead letters",
		Long: `A workflow's dead letters are the source's events that could not be read
(<workflow>.source.dlq) and the batches no model of a step passed
(<workflow>.<step>.dlq), each with its reason in the flexiflow-error
header. list shows them, show decodes one, replay sends step dead letters
back to their step.`,
	}
	cmd.AddCommand(newDLQListCmd(g), newDLQShowCmd(g), newDLQReplayCmd(g))
	return cmd
}

func newDLQListCmd(g *globals) *cobra.Command {
	var wfPath, brokers, format string
	var f dlqFilter
	cmd := &cobra.Command{
		Use:   "list --workflow FILE --brokers ADDRS",
		Short: "List the dead letters of the source and every step",
		Example: `  flexiflow dlq list --workflow wf.yaml --brokers kafka:9092
  flexiflow dlq list --workflow wf.yaml --brokers kafka:9092 --step score --since 1h --reason 'timed out' --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: use table or json", format)
			}
			l, err := load(cmd.Context(), g, wfPath, brokers, false, zap.NewNop())
			if err != nil {
				return err
			}
			defer l.close()
			dls, err := readDeadLetters(cmd.Context(), l, f)
			if err != nil {
				return err
			}
			if format == "json" {
				if dls == nil {
					dls = []*deadLetterRecord{}
				}
				b, err := json.MarshalIndent(dls, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "position\tstep\tbatch\trecords\treplayed\treason")
			for _, d := range dls {
				id := "-"
				if d.BatchID != nil {
					id = *d.BatchID
				}
				reason := d.Reason
				if len(reason) > 100 {
					reason = reason[:100] + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\n", dlqPosition(d.Topic, d.Partition, d.Offset), d.Step, id, d.Records, d.Replayed, reason)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	cmd.Flags().StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	f.add(cmd)
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

func newDLQShowCmd(g *globals) *cobra.Command {
	var wfPath, brokers string
	cmd := &cobra.Command{
		Use:   "show --workflow FILE --brokers ADDRS TOPIC/PARTITION/OFFSET | BATCH_ID",
		Short: "Decode one dead letter: its reason, headers and records",
		Example: `  flexiflow dlq show --workflow wf.yaml --brokers kafka:9092 fraud.score.dlq/0/12
  flexiflow dlq show --workflow wf.yaml --brokers kafka:9092 orders-1-340`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := load(cmd.Context(), g, wfPath, brokers, false, zap.NewNop())
			if err != nil {
				return err
			}
			defer l.close()
			dls, err := readDeadLetters(cmd.Context(), l, dlqFilter{})
			if err != nil {
				return err
			}
			for _, d := range dls {
				if dlqPosition(d.Topic, d.Partition, d.Offset) != args[0] && (d.BatchID == nil || *d.BatchID != args[0]) {
					continue
				}
				out := map[string]any{"dead_letter": d, "headers": headerMap(d.rec.Headers)}
				switch {
				case d.batch != nil:
					codec, err := event.New(event.JSON, d.step.In.RecordSchema, false)
					if err != nil {
						return err
					}
					var recs []any
					for _, r := range d.batch.Records {
						recs = append(recs, codec.JSONValue(r))
					}
					out["records"], out["attempt"], out["tried"] = recs, d.batch.Attempt, d.batch.Tried
				default:
					out["value"] = string(d.rec.Value)
				}
				b, err := json.MarshalIndent(out, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			return fmt.Errorf("no dead letter at %s: give a position from dlq list (topic/partition/offset) or a batch id", args[0])
		},
	}
	cmd.Flags().StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	cmd.Flags().StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

func newDLQReplayCmd(g *globals) *cobra.Command {
	var wfPath, brokers string
	var f dlqFilter
	var all bool
	cmd := &cobra.Command{
		Use:   "replay --workflow FILE --brokers ADDRS --step S (--batch ID… | --reason RE | --since T | --all)",
		Short: "Send step dead letters back to their step, attempts and tried models cleared, exactly once",
		Long: `Send the chosen dead letters of a step back to the step's input topic,
with their attempt count and tried models cleared, so the step's models
try them again from the top. Each one is written in a Kafka transaction
together with a marker on <workflow>.dlq.replayed; a dead letter with a
marker is never sent again, so running replay twice, or after a crash,
duplicates nothing. Source dead letters are events that did not fit the
schema: fix the producer and write them again with flexiflow produce.`,
		Example: `  flexiflow dlq replay --workflow wf.yaml --brokers kafka:9092 --step score --reason 'circuit open'
  flexiflow dlq replay --workflow wf.yaml --brokers kafka:9092 --step score --batch orders-1-340`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.step == "" || f.step == "source" {
				return fmt.Errorf("--step is required and must be a step: replay sends a step's dead letters back to it")
			}
			if !all && len(f.batches) == 0 && f.reason == "" && f.since == "" {
				return fmt.Errorf("choose what to replay with --batch, --reason or --since, or say --all")
			}
			l, err := load(cmd.Context(), g, wfPath, brokers, false, zap.NewNop())
			if err != nil {
				return err
			}
			defer l.close()
			dls, err := readDeadLetters(cmd.Context(), l, f)
			if err != nil {
				return err
			}
			// Replay alone writes: its markers' topic, and the step's input.
			if err := stream.EnsureTopics(cmd.Context(), l.kafka, l.wf.Partitions, replayedTopic(l)); err != nil {
				return err
			}
			cl, err := kgo.NewClient(append(l.kafka.ClientOpts(), kgo.TransactionalID(l.wf.Name+".dlq-replay"))...)
			if err != nil {
				return err
			}
			defer cl.Close()
			sent, skipped := 0, 0
			for _, d := range dls {
				if d.Replayed {
					skipped++
					continue
				}
				if d.batch == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "skipping %s: it is not a batch of the step's input (%s)\n", dlqPosition(d.Topic, d.Partition, d.Offset), d.Reason)
					continue
				}
				b := *d.batch
				b.Attempt, b.Tried, b.Step, b.StepCostMs = 0, nil, "", 0
				v, err := d.step.In.Encode(nil, &b)
				if err != nil {
					return err
				}
				if err := cl.BeginTransaction(); err != nil {
					return err
				}
				pos := dlqPosition(d.Topic, d.Partition, d.Offset)
				err = cl.ProduceSync(cmd.Context(),
					&kgo.Record{Topic: d.step.Spec.Topics.In, Key: d.rec.Key, Value: v, Headers: stream.Headers(b.ID, 0, nil, "")},
					&kgo.Record{Topic: replayedTopic(l), Key: []byte(pos), Value: []byte(strconv.FormatInt(time.Now().UnixMilli(), 10))},
				).FirstErr()
				commit := kgo.TryCommit
				if err != nil {
					commit = kgo.TryAbort
				}
				if endErr := cl.EndTransaction(context.WithoutCancel(cmd.Context()), commit); endErr != nil && err == nil {
					err = endErr
				}
				if err != nil {
					return fmt.Errorf("replaying %s: %w (%d replayed before it)", pos, err, sent)
				}
				sent++
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d dead letters of step %s to %s; %d already replayed before\n", sent, f.step, dlqStepIn(l, f.step), skipped)
			return nil
		},
	}
	cmd.Flags().StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	cmd.Flags().StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter of the step not replayed yet")
	f.add(cmd)
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

func dlqStepIn(l *loaded, step string) string {
	s, err := l.wf.Step(step)
	if err != nil {
		return "?"
	}
	return s.Topics.In
}
