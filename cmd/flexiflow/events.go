package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages/edge"
	"github.com/flexiflow/flexiflow/stream"
)

// eventLine is one event of an input file, as a JSON object.
type eventLine struct {
	line int
	text string
}

// eventLines reads JSON Lines, or CSV (a header row naming the fields,
// then one event per row) when the first line is not a JSON object. CSV
// cells become JSON by the field's kind in the schema: numbers stay
// unquoted when they parse, true/false for booleans, an empty cell is
// null, anything else a string.
func eventLines(r io.Reader, name string, kinds map[string]string) ([]eventLine, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	skipped := 0 // lines before the first that holds anything, for line numbers
	head, _ := br.Peek(1)
	for len(head) == 1 && (head[0] == ' ' || head[0] == '\n' || head[0] == '\r' || head[0] == '\t') {
		if head[0] == '\n' {
			skipped++
		}
		_, _ = br.ReadByte()
		head, _ = br.Peek(1)
	}
	var out []eventLine
	if len(head) == 1 && head[0] != '{' {
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the CSV header: %w", name, err)
		}
		for {
			row, err := cr.Read()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				line := 0
				if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
					line = pe.Line
				}
				return nil, fmt.Errorf("%s:%d: %v (nothing was written)", name, line+skipped, err)
			}
			line, _ := cr.FieldPos(0)
			line += skipped
			if len(row) != len(header) {
				return nil, fmt.Errorf("%s:%d: %d cells for the header's %d fields (nothing was written)", name, line, len(row), len(header))
			}
			obj := make(map[string]any, len(row))
			for i, cell := range row {
				obj[header[i]] = csvValue(cell, kinds[header[i]])
			}
			b, err := json.Marshal(obj)
			if err != nil {
				return nil, err
			}
			out = append(out, eventLine{line, string(b)})
		}
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1 + skipped; sc.Scan(); line++ {
		if text := strings.TrimSpace(sc.Text()); text != "" {
			out = append(out, eventLine{line, text})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}

// eventKey is field of a JSON event as its Kafka key: a string's text, any
// other value's JSON as written (a number keeps its digits: 1234567, not
// 1.234567e+06).
func eventKey(text, field string) ([]byte, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &obj) != nil {
		return nil, false
	}
	raw, ok := obj[field]
	if !ok {
		return nil, false
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return []byte(str), true
	}
	return raw, true
}

// csvValue is a CSV cell as the JSON value its field's kind expects.
func csvValue(cell, kind string) any {
	switch {
	case cell == "":
		return nil
	case kind == schemas.KindNumber:
		if n := json.Number(cell); json.Valid([]byte(cell)) {
			return n
		}
	case kind == schemas.KindBool:
		if cell == "true" || cell == "false" {
			return cell == "true"
		}
	}
	return cell
}

// produceEvents writes a JSON Lines or CSV file to the workflow's source topic.
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
	reg, err := g.schemaRegistry(l.wf)
	if err != nil {
		return err
	}
	out, err := edge.SourceCodec(src, l.steps[0].In.RecordSchema, reg)
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
	lines, err := eventLines(r, name, l.steps[0].In.Fields)
	if err != nil {
		return err
	}
	var recs []*kgo.Record
	for _, ln := range lines {
		line, text := ln.line, ln.text
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
			k, ok := eventKey(text, key)
			if !ok {
				return fmt.Errorf("%s:%d: no field %q to key the event by (nothing was written)", name, line, key)
			}
			kr.Key = k
		}
		recs = append(recs, kr)
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
			reg, err := g.schemaRegistry(l.wf)
			if err != nil {
				return err
			}
			codec, err := edge.SinkCodec(l.wf.Sink, l.steps[0].In.RecordSchema, l.steps[len(l.steps)-1].Out.RecordSchema, reg)
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
