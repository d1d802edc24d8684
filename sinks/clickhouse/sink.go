package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
)

// SinkOptions tune a Sink.
type SinkOptions struct {
	// Topic to read traces from (<workflow>.traces).
	Topic string
	// Group is the consumer group (default "<Topic>.clickhouse").
	Group string
	// BatchRows flushes once this many rows are pending (default 5000).
	BatchRows int
	// FlushInterval flushes pending rows at least this often (default 1s).
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed inserts
	// (defaults 200ms and 30s; the wait doubles on each failure).
	MinBackoff, MaxBackoff time.Duration
	// InsertTimeout bounds one insert call (default 30s).
	InsertTimeout time.Duration
	Log           *zap.Logger
}

func (o *SinkOptions) defaults() {
	if o.Group == "" {
		o.Group = o.Topic + ".clickhouse"
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 5000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
}

// SinkStats are a sink's counters so far.
type SinkStats struct {
	Inserted int64 // rows ClickHouse acknowledged (replays included)
	Skipped  int64 // records that were not traces
	Flushes  int64
	Failures int64 // failed insert attempts
	Paused   bool  // consumption paused while inserts fail
	Pending  int   // rows read but not inserted yet
	// LastRecord is when the sink last read a trace (zero: none yet).
	LastRecord time.Time
}

// Sink moves traces from a topic into ClickHouse.
type Sink struct {
	kafka  stream.Config
	ins    Inserter
	o      SinkOptions
	codec  *schemas.TraceCodec
	stats  atomic.Pointer[SinkStats]
	counts SinkStats
}

// NewSink prepares a sink; Run starts it.
func NewSink(kafka stream.Config, ins Inserter, o SinkOptions) (*Sink, error) {
	if o.Topic == "" {
		return nil, fmt.Errorf("clickhouse sink: no traces topic given")
	}
	o.defaults()
	codec, err := schemas.NewTraceCodec()
	if err != nil {
		return nil, err
	}
	s := &Sink{kafka: kafka, ins: ins, o: o, codec: codec}
	s.publish()
	return s, nil
}

// Stats returns the counters so far (safe from any goroutine).
func (s *Sink) Stats() SinkStats { return *s.stats.Load() }

func (s *Sink) publish() { c := s.counts; s.stats.Store(&c) }

// Run consumes until ctx ends, then flushes what it holds (for up to
// InsertTimeout) and commits. Offsets are committed only after the rows
// they cover were inserted: a crash replays them, and the table
// deduplicates the replay.
func (s *Sink) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(append(s.kafka.ClientOpts(),
		kgo.ConsumerGroup(s.o.Group),
		kgo.ConsumeTopics(s.o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
	)...)
	if err != nil {
		return fmt.Errorf("clickhouse sink: Kafka client for %s: %w", s.o.Topic, err)
	}
	defer cl.Close()
	log := s.o.Log.With(zap.String("topic", s.o.Topic), zap.String("group", s.o.Group))
	log.Info("clickhouse sink started")

	var pending []Row
	var firstPending time.Time
	for {
		wait := s.o.FlushInterval
		if len(pending) > 0 {
			wait = max(time.Until(firstPending.Add(s.o.FlushInterval)), time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollRecords(pctx, s.o.BatchRows-len(pending))
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				log.Warn("trace fetch error", zap.String("fetch_topic", t), zap.Int32("partition", p), zap.Error(err))
			}
		})
		read := len(pending)
		fetches.EachRecord(func(r *kgo.Record) {
			t, err := s.codec.Decode(r.Value)
			if err != nil {
				s.counts.Skipped++
				log.Warn("record on the traces topic is not a trace; skipped", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
				return
			}
			pending = append(pending, FromTrace(t))
		})
		if len(pending) > read {
			now := time.Now()
			if read == 0 {
				firstPending = now
			}
			s.counts.LastRecord = now
		}
		s.counts.Pending = len(pending)
		stopping := ctx.Err() != nil
		due := len(pending) >= s.o.BatchRows || (len(pending) > 0 && time.Since(firstPending) >= s.o.FlushInterval)
		if due || stopping {
			fctx := ctx
			if stopping {
				var cancel context.CancelFunc
				fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), s.o.InsertTimeout)
				defer cancel()
			}
			if err := s.flush(fctx, cl, pending, log); err != nil {
				if stopping {
					log.Warn("stopping with traces not inserted; they will be read again on the next start", zap.Int("rows", len(pending)), zap.Error(err))
					return nil
				}
				return err
			}
			pending = pending[:0]
			s.counts.Pending = 0
			if err := cl.CommitUncommittedOffsets(fctx); err != nil {
				log.Warn("committing offsets failed; the rows just inserted may be inserted again (deduplicated)", zap.Error(err))
			}
		}
		s.publish()
		if stopping {
			log.Info("clickhouse sink stopped", zap.Int64("rows_inserted", s.counts.Inserted))
			return nil
		}
	}
}

// flush inserts rows, retrying with backoff until it succeeds or ctx ends.
// While it retries, fetching from the topic is paused: traces wait in
// Kafka, not in memory.
func (s *Sink) flush(ctx context.Context, cl *kgo.Client, rows []Row, log *zap.Logger) error {
	if len(rows) == 0 {
		return nil
	}
	backoff := stream.NewBackoff(s.o.MinBackoff, s.o.MaxBackoff)
	for attempt := 1; ; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, s.o.InsertTimeout)
		start := time.Now()
		err := s.ins.Insert(ictx, rows)
		cancel()
		if err == nil {
			s.counts.Inserted += int64(len(rows))
			s.counts.Flushes++
			if s.counts.Paused {
				cl.ResumeFetchTopics(s.o.Topic)
				s.counts.Paused = false
				log.Info("ClickHouse accepts inserts again; consumption resumed", zap.Int("attempts", attempt))
			}
			log.Debug("flushed traces", zap.Int("rows", len(rows)), zap.Duration("took", time.Since(start)))
			return nil
		}
		s.counts.Failures++
		if !s.counts.Paused {
			cl.PauseFetchTopics(s.o.Topic)
			s.counts.Paused = true
		}
		s.publish()
		wait := backoff.Next()
		log.Warn("inserting traces into ClickHouse failed; consumption paused, retrying", zap.Int("rows", len(rows)),
			zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(err))
		if stream.Sleep(ctx, wait) != nil {
			return fmt.Errorf("inserting %d traces into ClickHouse: %w (last error: %v)", len(rows), ctx.Err(), err)
		}
	}
}
