package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCommitted returns the committed records of topics from their start
// to where they end now, in order per partition; a topic that does not
// exist holds none. It stops when every partition has reached its end as
// of the call. A transaction's commit marker takes the last offset without
// a record, so a partition whose last record sits just before it is done
// once a short poll brings nothing more; one further behind gets up to
// idleLimit of silence (a slow broker, a first fetch) before the read ends.
func ReadCommitted(ctx context.Context, cfg Config, topics ...string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the end offsets of %v: %w", topics, err)
	}
	left := map[string]map[int32]int64{} // partitions not read to their end yet
	var listErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			listErr = fmt.Errorf("listing the end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		case o.Offset > 0:
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
		}
	})
	if listErr != nil {
		return nil, listErr
	}
	remaining, nearly := 0, 0 // partitions left; of those, read to just before their end
	for _, ps := range left {
		remaining += len(ps)
	}
	near := map[string]map[int32]bool{}
	var out []*kgo.Record
	var silent time.Duration
	for remaining > 0 {
		wait := time.Second
		if nearly == remaining {
			wait = 250 * time.Millisecond // what is left is most likely commit markers
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("reading %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return out, fetchErr
		}
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			switch {
			case r.Offset+1 >= end:
				delete(left[r.Topic], r.Partition)
				remaining--
				if near[r.Topic][r.Partition] {
					nearly--
				}
			case r.Offset+2 >= end && !near[r.Topic][r.Partition]:
				if near[r.Topic] == nil {
					near[r.Topic] = map[int32]bool{}
				}
				near[r.Topic][r.Partition] = true
				nearly++
			}
		})
		if n > 0 {
			silent = 0
			continue
		}
		silent += wait
		if nearly == remaining || silent >= idleLimit {
			break // the rest of each partition is markers, or nothing comes
		}
	}
	return out, nil
}

// idleLimit is how long ReadCommitted waits for records that should come.
const idleLimit = 5 * time.Second
