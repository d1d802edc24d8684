// Package relay is the transactional consume → produce loop that a
// workflow's source (ingest) and sink (egress) run: records enter from
// the topics a consumer group reads, a function turns each poll's records
// into the records to write, and those are produced in the same Kafka
// transaction that commits the consumed offsets, so each input is written
// exactly once however the process stops.
package relay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stream"
)

// Func turns one poll's records into the records to produce. An error
// aborts the transaction: the records are read again, after a backoff
// that grows while the errors go on (a schema registry that is down
// pauses the relay; it does not spin).
type Func func(recs []*kgo.Record) ([]*kgo.Record, error)

// Config is one relay.
type Config struct {
	Kafka    stream.Config
	Group    string   // consumer group
	TxnID    string   // transactional id, unique per consumer
	Topics   []string // topics to read
	Instance string   // static group membership id
	// Linger is how long a transaction waits for more records after the
	// first, up to MaxRecords (0: none).
	Linger     time.Duration
	MaxRecords int
	Log        *zap.Logger
}

// Run relays until ctx ends. A failed session is replaced after a
// jittered backoff, so Run returns only when ctx ends (nil) or the
// configuration is wrong.
func Run(ctx context.Context, c Config, fn Func) error {
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 500
	}
	backoff := stream.NewBackoff(250*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		began := time.Now()
		err := session(ctx, c, fn)
		if err == nil || ctx.Err() != nil {
			return nil //nolint:nilerr // a session cut short by ctx ending is a clean stop
		}
		if time.Since(began) > time.Minute {
			backoff.Reset()
		}
		wait := backoff.Next()
		c.Log.Warn("kafka session failed; starting a new one", zap.String("group", c.Group), zap.Error(err), zap.Duration("backoff", wait))
		if stream.Sleep(ctx, wait) != nil {
			return nil //nolint:nilerr // stopped while waiting to retry: a clean stop
		}
	}
	return nil
}

func session(ctx context.Context, c Config, fn Func) error {
	opts := c.Kafka.TransactOpts(c.Group, c.TxnID, c.Topics...)
	if c.Instance != "" {
		opts = append(opts, kgo.InstanceID(c.Instance))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("group %s: %w", c.Group, err)
	}
	defer sess.Close()
	pause := stream.NewBackoff(250*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, c.MaxRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		if err := fetchErr(fetches); err != nil {
			return err
		}
		recs := fetches.Records()
		if c.Linger > 0 && len(recs) > 0 && len(recs) < c.MaxRecords {
			lctx, cancel := context.WithTimeout(ctx, c.Linger)
			for len(recs) < c.MaxRecords && lctx.Err() == nil {
				more := sess.PollRecords(lctx, c.MaxRecords-len(recs))
				// Records polled count as consumed: they go in this
				// transaction even when the poll also reports an error.
				recs = append(recs, more.Records()...)
				if fetchErr(more) != nil {
					break
				}
			}
			cancel()
		}
		if len(recs) == 0 {
			continue
		}
		aborted, err := transact(ctx, c, sess, recs, fn)
		if err != nil {
			return err
		}
		if !aborted {
			pause.Reset()
			continue
		}
		if stream.Sleep(ctx, pause.Next()) != nil {
			return nil
		}
	}
	return nil
}

func fetchErr(f kgo.Fetches) error {
	var errs []error
	f.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("fetching %s/%d: %w", topic, p, err))
		}
	})
	return errors.Join(errs...)
}

// endTimeout bounds flushing and ending a transaction, so a stop or a
// broker that went away cannot hold the relay for good.
const endTimeout = 30 * time.Second

// transact runs fn over recs in one transaction; aborted reports that it
// did not commit (fn failed, or a record was refused), so the records are
// read again after a pause.
func transact(ctx context.Context, c Config, sess *kgo.GroupTransactSession, recs []*kgo.Record, fn Func) (aborted bool, err error) {
	if err := sess.Begin(); err != nil {
		return false, fmt.Errorf("beginning a transaction: %w", err)
	}
	out, fnErr := fn(recs)
	var produceErr atomic.Value // always an error wrapped by fmt.Errorf: one concrete type
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if fnErr == nil {
		for _, r := range out {
			sess.Produce(endCtx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.CompareAndSwap(nil, fmt.Errorf("producing to %s: %w", r.Topic, err))
				}
			})
		}
		if err := sess.Client().Flush(endCtx); err != nil {
			produceErr.CompareAndSwap(nil, fmt.Errorf("flushing the transaction's records: %w", err))
		}
	}
	commit := kgo.TryCommit
	if fnErr != nil || produceErr.Load() != nil {
		commit = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, commit)
	if errors.Is(err, kerr.ProducerFenced) {
		return false, fmt.Errorf("group %s: transactional id %s was fenced: another consumer with the same instance name took over; give each its own --instance-id: %w", c.Group, c.TxnID, err)
	}
	if err != nil {
		return false, fmt.Errorf("group %s: ending a transaction: %w", c.Group, err)
	}
	if !committed {
		if fnErr != nil {
			c.Log.Warn("transaction aborted; its records will be read again", zap.String("group", c.Group), zap.Error(fnErr))
		} else if pe := produceErr.Load(); pe != nil {
			c.Log.Warn("transaction aborted; its records will be read again", zap.String("group", c.Group), zap.Error(pe.(error)))
		}
		return true, nil
	}
	return false, nil
}
