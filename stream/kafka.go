package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Config says how to reach Kafka.
type Config struct {
	Brokers []string
	// Log receives the Kafka client's own warnings and errors.
	Log *zap.Logger
	// ConnectTimeout bounds how long Ping waits for a broker to answer.
	ConnectTimeout time.Duration
	// TLS, when set, encrypts the connections and checks the brokers'
	// certificates (security.go).
	TLS *TLS
	// SASL, when set, authenticates the client (PLAIN or SCRAM).
	SASL *SASL
}

// ClientOpts returns the options every FlexiFlow client starts from.
func (c Config) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
	}
	opts = append(opts, c.securityOpts()...)
	if c.Log != nil {
		opts = append(opts, kgo.WithLogger(kzap.New(Quiet(c.Log.Named("kafka"), 10*time.Second), kzap.Level(kgo.LogLevelWarn))))
	}
	return opts
}

// TransactOpts returns the options of a transactional consume → produce
// client: a member of group reading topics from their start, read_committed
// with stable offsets, producing as transactional id txnID. Records leave as
// soon as they are produced: every transaction flushes before it commits,
// so lingering to fill produce batches would only hold them back. A stage
// and the throughput benchmark's raw loop both start from these options, so
// they compare like for like.
func (c Config) TransactOpts(group, txnID string, topics ...string) []kgo.Opt {
	return append(c.ClientOpts(),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionalID(txnID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ProducerLinger(0),
	)
}

// Ping waits for the brokers to answer, retrying with backoff (and logging
// each miss) until cfg.ConnectTimeout (default 10s) has passed, then fails
// with a message that says what to check.
func Ping(ctx context.Context, cfg Config) error {
	if len(cfg.Brokers) == 0 {
		return errors.New("no Kafka brokers given: pass --brokers host:port[,host:port] or leave it out to use the embedded broker")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	addrs := strings.Join(cfg.Brokers, ",")
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := NewBackoff(250*time.Millisecond, 2*time.Second)
	for attempt := 1; ; attempt++ {
		err := pingOnce(ctx, cfg, min(2*time.Second, timeout))
		if err == nil {
			return nil
		}
		if perr := cfg.permanent(err); perr != nil {
			return perr
		}
		wait := backoff.Next()
		if cfg.Log != nil {
			cfg.Log.Warn("Kafka not reachable yet; retrying", zap.String("brokers", addrs), zap.Int("attempt", attempt),
				zap.Duration("backoff", wait), zap.Error(err))
		}
		if Sleep(ctx, wait) != nil {
			if parent.Err() != nil {
				return fmt.Errorf("stopped while waiting for Kafka at %s to answer: %w", addrs, parent.Err())
			}
			hint := ""
			if cfg.TLS == nil {
				hint = " (if the listener uses TLS, add --kafka-tls)"
			}
			return fmt.Errorf("cannot reach Kafka at %s within %s (%d attempts, last: %v); check the address and that the broker is running%s, or raise --connect-timeout",
				addrs, timeout, attempt, err, hint)
		}
	}
}

func pingOnce(ctx context.Context, cfg Config, timeout time.Duration) error {
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.RetryTimeout(timeout))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cl.Ping(ctx)
}

// EnsureTopics creates the topics that do not exist yet, each with the given
// number of partitions. Topics that exist are left as they are.
func EnsureTopics(ctx context.Context, cfg Config, partitions int, topics ...string) error {
	return ensureTopics(ctx, cfg, partitions, nil, topics...)
}

// EnsureCompactedTopic creates a log-compacted topic (latest value per key
// kept) with one partition if it does not exist.
func EnsureCompactedTopic(ctx context.Context, cfg Config, topic string) error {
	policy := "compact"
	return ensureTopics(ctx, cfg, 1, map[string]*string{"cleanup.policy": &policy}, topic)
}

func ensureTopics(ctx context.Context, cfg Config, partitions int, configs map[string]*string, topics ...string) error {
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(partitions), -1, configs, topics...)
	if err != nil {
		return fmt.Errorf("creating topics on %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	var errs []error
	for _, t := range resp.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %q: %w (create it yourself with %d partitions, or let FlexiFlow's user create topics)", t.Topic, t.Err, partitions))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitForLeaders(ctx, adm, cfg, topics)
}

// topicsReadyTimeout bounds how long EnsureTopics waits for new topics'
// partitions to have leaders.
const topicsReadyTimeout = 30 * time.Second

// waitForLeaders waits until every partition of topics has a leader in the
// brokers' metadata. A broker answers CreateTopics before every broker
// knows the topic (on a broker that has just started, for seconds), and a
// client that produces at once then fails with UNKNOWN_TOPIC_OR_PARTITION.
func waitForLeaders(ctx context.Context, adm *kadm.Client, cfg Config, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, topicsReadyTimeout)
	defer cancel()
	var pending []string
	for {
		pending = pending[:0]
		details, err := adm.ListTopics(ctx, topics...)
		if err == nil {
			for _, t := range topics {
				if d, ok := details[t]; !ok || d.Err != nil || len(d.Partitions) == 0 || !allLed(d.Partitions) {
					pending = append(pending, t)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			if len(pending) == 0 {
				pending = topics
			}
			return fmt.Errorf("topics %s on %s were created but their partitions have no leader after %s: check the brokers' logs",
				strings.Join(pending, ", "), strings.Join(cfg.Brokers, ","), topicsReadyTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// CheckTopics returns an error naming every topic that does not exist, and
// how to fix it.
func CheckTopics(ctx context.Context, cfg Config, topics ...string) error {
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("listing topics on %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	var missing []string
	for _, t := range topics {
		if d, ok := details[t]; !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("topics missing on %s: %s; create them, or let FlexiFlow create them (--create-topics)",
			strings.Join(cfg.Brokers, ","), strings.Join(missing, ", "))
	}
	return nil
}
