package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/schemas/registry"
	"github.com/flexiflow/flexiflow/stages/relay"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// Egress writes a workflow's delivered batches to its sink, one record per
// event.
type Egress struct {
	wf     *workflow.Workflow
	sink   *workflow.Sink
	batch  *schemas.BatchCodec // the last step's output
	events *event.Codec
	input  *schemas.Binary // the first step's input, with include_input
	inName string          // its full name: the input field's union branch

	// Counts, for progress and tests.
	Batches, Events atomic.Int64
}

// NewEgress prepares the sink of wf; first and last are the first step's
// input and the last step's output codecs, reg the schema registry (nil
// unless the sink's format is confluent-avro).
func NewEgress(wf *workflow.Workflow, first, last *schemas.BatchCodec, reg event.Registry) (*Egress, error) {
	if wf.Sink == nil {
		return nil, fmt.Errorf("workflow %q has no sink: add `sink: {topic: …, format: json}` to write one record per event", wf.Name)
	}
	if wf.Sink.IncludeInput && first == nil {
		return nil, errors.New("sink.include_input needs the first step's input schema: run egress with the whole workflow compiled")
	}
	in := ""
	if first != nil {
		in = first.RecordSchema
	}
	codec, err := SinkCodec(wf.Sink, in, last.RecordSchema, reg)
	if err != nil {
		return nil, err
	}
	e := &Egress{wf: wf, sink: wf.Sink, batch: last, events: codec}
	if wf.Sink.IncludeInput {
		if e.input, err = schemas.NewBinary(first.RecordSchema); err != nil {
			return nil, fmt.Errorf("sink.include_input: %w", err)
		}
		e.inName = first.Record
	}
	return e, nil
}

// SinkCodec is the codec of the sink's records (of SinkSchema(sink, in,
// out)), for egress and for anything that reads the sink topic back.
func SinkCodec(sink *workflow.Sink, in, out string, reg event.Registry) (*event.Codec, error) {
	schema, err := SinkSchema(sink, in, out)
	if err != nil {
		return nil, err
	}
	var opts []event.Option
	if reg != nil {
		opts = append(opts, event.WithRegistry(reg, sink.Topic+"-value"))
	}
	codec, err := event.New(sink.Format, schema, false, opts...)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return codec, nil
}

// resultName names the record of input and output that include_input writes.
const resultName = "FlexiFlowResult"

// SinkSchema is the record schema of the sink's records: the last step's
// output schema (out), or with include_input a record of two fields,
// input (the first step's input schema, in; null for a batch no source
// made) and output.
func SinkSchema(sink *workflow.Sink, in, out string) (string, error) {
	if !sink.IncludeInput {
		return out, nil
	}
	var inT, outT map[string]any
	if err := json.Unmarshal([]byte(in), &inT); err != nil {
		return "", fmt.Errorf("sink.include_input: the input schema: %w", err)
	}
	if err := json.Unmarshal([]byte(out), &outT); err != nil {
		return "", fmt.Errorf("sink.include_input: the output schema: %w", err)
	}
	var outField any = outT
	if name := fullName(inT); name == fullName(outT) {
		if in != out {
			return "", fmt.Errorf("sink.include_input: the input and output schemas are different records both named %s; rename one", name)
		}
		outField = name // the same record: name it the second time
	}
	b, err := json.Marshal(map[string]any{
		"type": "record", "name": resultName,
		"doc": "One event's result: the record the workflow's first step read, and the last step's output.",
		"fields": []any{
			map[string]any{"name": "input", "type": []any{"null", inT}, "default": nil},
			map[string]any{"name": "output", "type": outField},
		},
	})
	if err != nil {
		return "", err
	}
	if _, err := goavro.NewCodec(string(b)); err != nil {
		return "", fmt.Errorf("sink.include_input: the input and output schemas do not combine into one record (do they define the same named type twice?): %w", err)
	}
	return string(b), nil
}

func fullName(m map[string]any) string {
	name, _ := m["name"].(string)
	if ns, _ := m["namespace"].(string); ns != "" && !strings.Contains(name, ".") {
		return ns + "." + name
	}
	return name
}

// Run writes to the sink until ctx ends. With confluent-avro it first
// registers the sink's schema, waiting out a registry that does not
// answer; one that refuses the schema stops it with the reason.
func (e *Egress) Run(ctx context.Context, kafka stream.Config, instance string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("role", "egress"))
	backoff := stream.NewBackoff(250*time.Millisecond, 10*time.Second)
	for {
		err := e.events.Prepare(ctx)
		if err == nil {
			break
		}
		var refused *registry.Refused
		if errors.As(err, &refused) {
			return fmt.Errorf("sink %s: %w", e.sink.Topic, err)
		}
		wait := backoff.Next()
		log.Warn("the sink's schema is not registered yet; trying again", zap.Error(err), zap.Duration("backoff", wait))
		if stream.Sleep(ctx, wait) != nil {
			return nil //nolint:nilerr // stopped while waiting for the registry: a clean stop
		}
	}
	return relay.Run(ctx, relay.Config{
		Kafka: kafka, Group: e.sink.Group, TxnID: e.sink.Group + "-" + instance, Instance: instance,
		Topics: []string{e.wf.Topics.Out}, MaxRecords: 100, Log: log,
	}, e.Records)
}

// Records turns delivered batches into one sink record per event: keyed
// by the event's key (the batch id for a batch no source made), with the
// event's headers, flexiflow-batch-id, flexiflow-models and
// flexiflow-source. A batch that does not decode aborts the transaction
// with the reason: the last step wrote it, so it is a bug, not an event.
func (e *Egress) Records(recs []*kgo.Record) ([]*kgo.Record, error) {
	var out []*kgo.Record
	var events int64
	for _, r := range recs {
		b, err := e.batch.Decode(r.Value)
		if err != nil {
			return nil, fmt.Errorf("batch at %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		models := strings.Join(b.Served, ",")
		for i, rec := range b.Records {
			var ev *schemas.Event
			if i < len(b.Events) {
				ev = &b.Events[i]
			}
			if e.input != nil {
				rec, err = e.withInput(rec, ev)
				if err != nil {
					return nil, fmt.Errorf("batch %s record %d: %w", b.ID, i, err)
				}
			}
			v, err := e.events.Encode(rec)
			if err != nil {
				return nil, fmt.Errorf("batch %s record %d as %s: %w", b.ID, i, e.sink.Format, err)
			}
			s := &kgo.Record{Topic: e.sink.Topic, Key: []byte(b.ID), Value: v}
			if ev != nil {
				s.Key = ev.Key
				for _, h := range ev.Headers {
					s.Headers = append(s.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
				}
				s.Headers = append(s.Headers, kgo.RecordHeader{Key: stream.HeaderSource, Value: []byte(fmt.Sprintf("%s/%d/%d", ev.Topic, ev.Partition, ev.Offset))})
			}
			s.Headers = append(s.Headers,
				kgo.RecordHeader{Key: stream.HeaderBatchID, Value: []byte(b.ID)},
				kgo.RecordHeader{Key: stream.HeaderModels, Value: []byte(models)})
			out = append(out, s)
			events++
		}
	}
	e.Batches.Add(int64(len(recs)))
	e.Events.Add(events)
	return out, nil
}

// withInput pairs an output record with the input its event carried.
func (e *Egress) withInput(rec map[string]any, ev *schemas.Event) (map[string]any, error) {
	var in any
	if ev != nil && ev.Input != nil {
		v, _, err := e.input.Decode(ev.Input)
		if err != nil {
			return nil, fmt.Errorf("the event's input record: %w", err)
		}
		in = goavro.Union(e.inName, v)
	}
	return map[string]any{"input": in, "output": rec}, nil
}
