package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stream"
)

// produceEvents writes a JSON Lines file to the workflow's source topic.
func produceEvents(cmd *cobra.Command, g *globals, wfPath, brokers, from, key string, log *zap.Logger) error {
	l, err := compile(wfPath, log)
	if err != nil {
		return err
	}
	src := l.wf.Source
	if src == nil {
		return fmt.Errorf("workflow %q has no source to write events to: add `source: {topic: …, format: json}`", l.wf.Name)
	}
	check, err := event.New(event.JSON, l.steps[0].In.RecordSchema, src.Strict)
	if err != nil {
		return err
	}
	out, err := event.New(src.Format, l.steps[0].In.RecordSchema, src.Strict)
	if err != nil {
		return err
	}
	var r io.Reader = cmd.InOrStdin()
	name := "standard input"
	if from != "-" {
		f, err := os.Open(from)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, from
	}
	var recs []*kgo.Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		rec, err := check.Decode([]byte(text))
		if err != nil {
			return fmt.Errorf("%s:%d: %v (nothing was written)", name, line, err)
		}
		value := []byte(text)
		if src.Format != event.JSON {
			if value, err = out.Encode(rec); err != nil {
				return fmt.Errorf("%s:%d: %v (nothing was written)", name, line, err)
			}
		}
		kr := &kgo.Record{Topic: src.Topic, Value: value}
		if key != "" {
			var obj map[string]any
			_ = json.Unmarshal([]byte(text), &obj)
			v, ok := obj[key]
			if !ok {
				return fmt.Errorf("%s:%d: no field %q to key the event by (nothing was written)", name, line, key)
			}
			kr.Key = []byte(fmt.Sprint(v))
		}
		recs = append(recs, kr)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if err := l.connect(cmd.Context(), g, brokers, false, log); err != nil {
		return err
	}
	defer l.close()
	if err := stream.EnsureTopics(cmd.Context(), l.kafka, l.wf.Partitions, src.Topic); err != nil {
		return err
	}
	cl, err := kgo.NewClient(l.kafka.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(cmd.Context(), recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing events to %s: %w", src.Topic, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "produced %d events to %s\n", len(recs), src.Topic)
	return nil
}

func newConsumeCmd(g *globals) *cobra.Command {
	var wfPath, brokers string
	var n int
	var fromBeginning bool
	cmd := &cobra.Command{
		Use:   "consume --workflow FILE --brokers ADDRS [-n N] [--from-beginning]",
		Short: "Print the workflow's sink records as JSON lines, with their keys and headers",
		Long: `Print the records on the workflow's sink topic, one JSON object per line:
{"key": …, "headers": {…}, "value": …, "partition": …, "offset": …}. Only
committed records are read. Without -n it follows the topic until
interrupted; --from-beginning starts at the oldest record instead of the
newest.`,
		Example: `  flexiflow consume --workflow examples/fraud/workflow.yaml --brokers kafka:9092 --from-beginning -n 48`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("warn")
			if err != nil {
				return err
			}
			defer log.Sync()
			l, err := load(cmd.Context(), g, wfPath, brokers, false, log)
			if err != nil {
				return err
			}
			defer l.close()
			if l.wf.Sink == nil {
				return fmt.Errorf("workflow %q has no sink to read: add `sink: {topic: …, format: json}`", l.wf.Name)
			}
			codec, err := event.New(l.wf.Sink.Format, l.steps[len(l.steps)-1].Out.RecordSchema, false)
			if err != nil {
				return err
			}
			start := kgo.NewOffset().AtEnd()
			if fromBeginning {
				start = kgo.NewOffset().AtStart()
			}
			cl, err := kgo.NewClient(append(l.kafka.ClientOpts(), kgo.ConsumeTopics(l.wf.Sink.Topic),
				kgo.ConsumeResetOffset(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
			if err != nil {
				return err
			}
			defer cl.Close()
			enc := json.NewEncoder(cmd.OutOrStdout())
			printed := 0
			for n <= 0 || printed < n {
				fetches := cl.PollFetches(cmd.Context())
				if cmd.Context().Err() != nil {
					return nil
				}
				var ferr error
				fetches.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, fmt.Errorf("%s/%d: %w", t, p, err)) })
				if ferr != nil {
					return ferr
				}
				for _, r := range fetches.Records() {
					if n > 0 && printed >= n {
						break
					}
					line := map[string]any{"partition": r.Partition, "offset": r.Offset, "headers": headerMap(r.Headers)}
					if r.Key != nil {
						line["key"] = string(r.Key)
					} else {
						line["key"] = nil
					}
					rec, err := codec.Decode(r.Value)
					if err != nil {
						line["error"] = err.Error()
						line["value"] = string(r.Value)
					} else {
						line["value"] = codec.JSONValue(rec)
					}
					if err := enc.Encode(line); err != nil {
						return err
					}
					printed++
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&wfPath, "workflow", "", "workflow file with a sink (required)")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers host:port[,host:port] (required)")
	f.IntVarP(&n, "n", "n", 0, "stop after this many records (0: follow until interrupted)")
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the oldest record on the sink topic")
	_ = cmd.MarkFlagRequired("workflow")
	_ = cmd.MarkFlagRequired("brokers")
	return cmd
}

func headerMap(hs []kgo.RecordHeader) map[string]string {
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}
