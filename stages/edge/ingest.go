package edge

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/stages/relay"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// Ingest batches a workflow's source events for its first step.
type Ingest struct {
	wf     *workflow.Workflow
	src    *workflow.Source
	events *event.Codec
	batch  *schemas.BatchCodec // the first step's input
	in     string              // the first step's input topic
	input  *schemas.Binary     // with the sink's include_input: encodes each event's record
	now    func() time.Time

	// Counts, for progress and tests.
	Batches, Events, DeadLetters, Tombstones atomic.Int64
}

// NewIngest prepares the source of wf; first is the first step's input
// codec, reg the schema registry (nil unless the source's format is
// confluent-avro).
func NewIngest(wf *workflow.Workflow, first *schemas.BatchCodec, reg event.Registry) (*Ingest, error) {
	if wf.Source == nil {
		return nil, fmt.Errorf("workflow %q has no source: add `source: {topic: …, format: json}` to read your own events", wf.Name)
	}
	codec, err := SourceCodec(wf.Source, first.RecordSchema, reg)
	if err != nil {
		return nil, err
	}
	g := &Ingest{wf: wf, src: wf.Source, events: codec, batch: first, in: wf.Steps[0].Topics.In, now: time.Now}
	if wf.Sink != nil && wf.Sink.IncludeInput {
		if g.input, err = schemas.NewBinary(first.RecordSchema); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// SourceCodec is the codec of the source's events, of the first step's
// input schema.
func SourceCodec(src *workflow.Source, schema string, reg event.Registry) (*event.Codec, error) {
	var opts []event.Option
	if reg != nil {
		opts = append(opts, event.WithRegistry(reg, src.Topic+"-value"))
	}
	codec, err := event.New(src.Format, schema, src.Strict, opts...)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return codec, nil
}

// Run ingests until ctx ends.
func (g *Ingest) Run(ctx context.Context, kafka stream.Config, instance string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	return relay.Run(ctx, relay.Config{
		Kafka: kafka, Group: g.src.Group, TxnID: g.src.Group + "-" + instance, Instance: instance,
		Topics: []string{g.src.Topic}, Linger: time.Duration(g.src.Batch.Linger), MaxRecords: 32 * g.src.Batch.MaxRecords,
		Log: log.With(zap.String("role", "ingest")),
	}, g.Batch)
}

// Batch turns one poll's events into batches for the first step, per
// source partition and in order, and dead letters for the events that
// cannot be read. A tombstone (no value) is skipped and counted.
func (g *Ingest) Batch(recs []*kgo.Record) ([]*kgo.Record, error) {
	type part struct {
		topic string
		p     int32
	}
	var order []part
	byPart := map[part][]*kgo.Record{}
	for _, r := range recs {
		k := part{r.Topic, r.Partition}
		if _, ok := byPart[k]; !ok {
			order = append(order, k)
		}
		byPart[k] = append(byPart[k], r)
	}
	var out []*kgo.Record
	var batches, events, dead, tombstones int64
	for _, k := range order {
		var cur *schemas.Batch
		size := 0
		flush := func() error {
			if cur == nil {
				return nil
			}
			v, err := g.batch.Encode(nil, cur)
			if err != nil {
				return fmt.Errorf("encoding batch %s: %w", cur.ID, err)
			}
			// Keyed by source partition: its batches reach the first step in order.
			out = append(out, &kgo.Record{Topic: g.in, Key: []byte(k.topic + "/" + strconv.Itoa(int(k.p))), Value: v,
				Headers: stream.Headers(cur.ID, 0, nil, "")})
			batches++
			cur, size = nil, 0
			return nil
		}
		for _, r := range byPart[k] {
			if r.Value == nil {
				tombstones++
				continue
			}
			n := eventBytes(r)
			if n > g.src.Batch.MaxBytes {
				out = append(out, g.deadLetter(r, fmt.Errorf("the event is %d bytes (value, key and headers), more than a batch may hold (source.batch.max_bytes %d); raise it if the first step's input topic takes larger records", n, g.src.Batch.MaxBytes)))
				dead++
				continue
			}
			rec, err := g.events.Decode(r.Value)
			if err != nil && !event.IsEventError(err) {
				// The schema registry did not answer: nothing is the
				// event's fault, so the poll is read again later.
				return nil, fmt.Errorf("event %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			if err != nil {
				out = append(out, g.deadLetter(r, err))
				dead++
				continue
			}
			if cur != nil && (len(cur.Records) >= g.src.Batch.MaxRecords || size+n > g.src.Batch.MaxBytes) {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			if cur == nil {
				cur = &schemas.Batch{ID: fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset), Workflow: g.wf.Name, CreatedAtMs: g.now().UnixMilli()}
			}
			ev := eventOf(r)
			if g.input != nil {
				if ev.Input, err = g.input.Append(nil, rec); err != nil {
					return nil, fmt.Errorf("event %s/%d/%d: encoding its record for the sink's include_input: %w", r.Topic, r.Partition, r.Offset, err)
				}
			}
			cur.Records = append(cur.Records, rec)
			cur.Events = append(cur.Events, ev)
			size += n
			events++
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	g.Events.Add(events)
	g.DeadLetters.Add(dead)
	g.Tombstones.Add(tombstones)
	g.Batches.Add(batches)
	return out, nil
}

// deadLetter is an event that cannot be read, as it came, with the reason.
func (g *Ingest) deadLetter(r *kgo.Record, err error) *kgo.Record {
	h := append(append([]kgo.RecordHeader(nil), r.Headers...),
		kgo.RecordHeader{Key: stream.HeaderError, Value: []byte(fmt.Sprintf("event %s/%d/%d does not fit %s: %v", r.Topic, r.Partition, r.Offset, g.wf.InputSchema, err))},
		kgo.RecordHeader{Key: stream.HeaderSource, Value: []byte(fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))})
	return &kgo.Record{Topic: g.src.DLQ, Key: r.Key, Value: r.Value, Headers: h}
}

func eventOf(r *kgo.Record) schemas.Event {
	e := schemas.Event{Key: r.Key, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	for _, h := range r.Headers {
		e.Headers = append(e.Headers, schemas.Header{Key: h.Key, Value: h.Value})
	}
	return e
}

// eventBytes is what an event adds to a batch: its value, key and
// headers, and its position.
func eventBytes(r *kgo.Record) int {
	n := len(r.Value) + len(r.Key) + len(r.Topic) + 16
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}
