package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCommitted returns the committed records of topics from their start
// to where they end now, in order per partition. It stops when every
// partition has reached its end as of the call, or when nothing more has
// arrived for a second (a transaction's commit marker ends a partition
// without a record).
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
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing the end offsets of %v: %w", topics, err)
	}
	left := map[string]map[int32]int64{} // partitions not read to their end yet
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
		}
	})
	remaining := 0
	for _, ps := range left {
		remaining += len(ps)
	}
	var out []*kgo.Record
	for remaining > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			if r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				remaining--
			}
		})
		if n == 0 {
			break // idle: the rest of each partition is markers
		}
	}
	return out, nil
}
