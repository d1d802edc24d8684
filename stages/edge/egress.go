package edge

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
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

	// Counts, for progress and tests.
	Batches, Events atomic.Int64
}

// NewEgress prepares the sink of wf; last is the last step's output codec.
func NewEgress(wf *workflow.Workflow, last *schemas.BatchCodec) (*Egress, error) {
	if wf.Sink == nil {
		return nil, fmt.Errorf("workflow %q has no sink: add `sink: {topic: …, format: json}` to write one record per event", wf.Name)
	}
	codec, err := event.New(wf.Sink.Format, last.RecordSchema, false)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &Egress{wf: wf, sink: wf.Sink, batch: last, events: codec}, nil
}

// Run writes to the sink until ctx ends.
func (e *Egress) Run(ctx context.Context, kafka stream.Config, instance string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	return relay.Run(ctx, relay.Config{
		Kafka: kafka, Group: e.sink.Group, TxnID: e.sink.Group + "-" + instance, Instance: instance,
		Topics: []string{e.wf.Topics.Out}, MaxRecords: 100, Log: log.With(zap.String("role", "egress")),
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
			v, err := e.events.Encode(rec)
			if err != nil {
				return nil, fmt.Errorf("batch %s record %d as %s: %w", b.ID, i, e.sink.Format, err)
			}
			s := &kgo.Record{Topic: e.sink.Topic, Key: []byte(b.ID), Value: v}
			if i < len(b.Events) {
				ev := b.Events[i]
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
