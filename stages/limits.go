package stages

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stream"
)

// A record larger than a topic takes must never stop a step: the broker
// (or the client, which checks the same limit before sending) refuses it,
// the transaction holding it aborts, and without care the batch would be
// read and refused again forever, with every batch behind it waiting.
//
// So a stage knows each topic's limit (its max.message.bytes, read at the
// start of every session, or WithMaxMessageBytes) and checks every record
// before producing it:
//   - a passing output too large for the next topic is a failed attempt
//     with the reason, and the batch goes on to the step's next model;
//   - a batch too large for the retry topic is dead-lettered instead;
//   - a dead letter too large to copy whole keeps its headers and reason
//     and says how large its value was and where the original is
//     (topic/partition/offset), with the value left out.
//
// If the broker still refuses a record (its limit is lower than the one the
// stage knew, say a --max-message-bytes above the topic's), the stage lowers
// what it takes the topic's limit to be below that record's size, the
// transaction aborts, and the batch takes the same path as above when it is
// processed again.

// defaultMaxMessageBytes is the client's default batch limit, used for a
// topic whose max.message.bytes cannot be read.
const defaultMaxMessageBytes = 1_000_012

// recordOverhead bounds what a record adds to its key, value and headers in
// a record batch of its own: the batch header (61 bytes) and the record's
// varints.
const recordOverhead = 128

type limits struct {
	fixed int // WithMaxMessageBytes; 0: read the topics' configs

	mu      sync.Mutex
	topics  map[string]int // max.message.bytes as configured
	learned map[string]int // below the size of a record the broker refused
}

// of returns the limit of topic.
func (l *limits) of(topic string) int {
	n := l.base(topic)
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.learned[topic]; ok {
		n = min(n, c)
	}
	return n
}

// base is the configured limit of topic, without what refusals taught.
func (l *limits) base(topic string) int {
	if l.fixed > 0 {
		return l.fixed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.topics[topic]; ok {
		return c
	}
	return defaultMaxMessageBytes
}

// load reads max.message.bytes of topics. A topic whose config cannot be
// read keeps the client's default, and the log says why.
func (l *limits) load(ctx context.Context, cfg stream.Config, log *zap.Logger, topics []string) {
	if l.fixed > 0 {
		return
	}
	got, err := topicLimits(ctx, cfg, topics)
	if err != nil {
		log.Warn("cannot read the topics' max.message.bytes; assuming the client's default (set --max-message-bytes to override)",
			zap.Int("max_message_bytes", defaultMaxMessageBytes), zap.Error(err))
	}
	l.mu.Lock()
	l.topics = got
	l.mu.Unlock()
}

func topicLimits(ctx context.Context, cfg stream.Config, topics []string) (map[string]int, error) {
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var errs []error
	for _, rc := range rcs {
		if rc.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rc.Name, rc.Err))
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
					out[rc.Name] = n
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// producerMax is the client's batch limit for topic: the topic's own, kept
// in the range the client accepts.
func (l *limits) producerMax(topic string) int32 {
	return int32(min(max(l.base(topic), 512), 1<<30))
}

// fetchMax is the largest limit among the topics a stage reads.
func (l *limits) fetchMax(topics ...string) int32 {
	n := 1 << 20
	for _, t := range topics {
		n = max(n, l.base(t))
	}
	return int32(min(n, 1<<30))
}

// size is what r weighs against a topic's limit.
func size(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + recordOverhead
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// tooLarge reports whether r is more than its topic takes, and its size.
func (l *limits) tooLarge(r *kgo.Record) (int, bool) {
	n := size(r)
	return n, n > l.of(r.Topic)
}

// refusals collects, during one transaction, the largest record the broker
// refused as too large per topic. The broker refuses a whole produce batch,
// so the small records that shared it with the large one are refused with
// it; only the largest says where the limit is.
type refusals struct {
	mu  sync.Mutex
	max map[string]int
}

func (r *refusals) add(topic string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max == nil {
		r.max = map[string]int{}
	}
	r.max[topic] = max(r.max[topic], n)
}

// largest returns the largest refused size per topic, once every record of
// the transaction has been acknowledged or failed.
func (r *refusals) largest() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max
}

// refused lowers the limit of topic below n, the size of a record the
// broker refused, and reports the new limit.
func (l *limits) refused(topic string, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.learned == nil {
		l.learned = map[string]int{}
	}
	if c, ok := l.learned[topic]; !ok || n-1 < c {
		l.learned[topic] = n - 1
	}
	return l.learned[topic]
}

// isTooLarge reports whether err is Kafka's refusal of a record's size.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// omitValue turns a dead letter too large to copy whole into one that keeps
// its key, headers and reason and says what was left out and where the
// original is.
func omitValue(dlq *kgo.Record, src *kgo.Record, n, limit int) {
	dlq.Headers = append(dlq.Headers,
		kgo.RecordHeader{Key: stream.HeaderValue, Value: []byte("omitted")},
		kgo.RecordHeader{Key: stream.HeaderValueBytes, Value: []byte(strconv.Itoa(len(dlq.Value)))},
		kgo.RecordHeader{Key: stream.HeaderSource, Value: []byte(fmt.Sprintf("%s/%d/%d", src.Topic, src.Partition, src.Offset))},
	)
	for i, h := range dlq.Headers {
		if h.Key == stream.HeaderError {
			dlq.Headers[i].Value = fmt.Appendf(nil, "%s; the dead letter's value (%d bytes, %d with headers) is more than topic %s takes (%d bytes) and is left out: the original is at %s/%d offset %d",
				h.Value, len(dlq.Value), n, dlq.Topic, limit, src.Topic, src.Partition, src.Offset)
		}
	}
	dlq.Value = nil
}
