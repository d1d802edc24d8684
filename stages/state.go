package stages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bandit"
)

// The policy's learned state travels in the workflow's compacted state
// topic, keyed by step name, written in the same transaction as the batches
// it learned from. A stage that starts reads the latest value for its step
// and resumes from it, so a restart does not throw away what was learned.

// stateRecord encodes the policy's state, or returns nil when the policy
// keeps none.
func (s *Stage) stateRecord() *kgo.Record {
	sp, ok := s.policy.(bandit.Stateful)
	if !ok {
		return nil
	}
	s.mu.Lock()
	b, err := sp.MarshalState()
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("policy state not saved", zap.Error(err))
		return nil
	}
	return &kgo.Record{Topic: s.step.Workflow.Topics.State, Key: []byte(s.step.Spec.Name), Value: b}
}

// committedRange lists, per partition of the state topic that holds
// committed records, where its records start and its last stable offset.
// An empty map means nothing was saved.
func committedRange(ctx context.Context, adm *kadm.Client, topic string) (map[int32][2]int64, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	lsos, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	ranges := map[int32][2]int64{}
	lsos.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Partition < 0 {
			return
		}
		if st, ok := starts.Lookup(topic, o.Partition); ok && st.Err == nil && o.Offset > st.Offset {
			ranges[o.Partition] = [2]int64{st.Offset, o.Offset}
		}
	})
	return ranges, nil
}

// restore loads the latest saved state for this step, if any.
func (s *Stage) restore(ctx context.Context) error {
	sp, ok := s.policy.(bandit.Stateful)
	if !ok {
		return nil
	}
	topic := s.step.Workflow.Topics.State
	// One client lists the state topic's committed range, then reads just
	// the partitions that hold records, from their start.
	cl, err := kgo.NewClient(append(s.kafka.ClientOpts(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ranges, err := committedRange(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return err
	}
	if len(ranges) == 0 {
		return nil // nothing saved yet: start from the prior at once
	}
	from := map[int32]kgo.Offset{}
	ends := map[int32]int64{}
	for p, r := range ranges {
		from[p], ends[p] = kgo.NewOffset().At(r[0]), r[1]
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	var latest []byte
	var fetchErr error
	deadline := time.Now().Add(10 * time.Second)
	empty := 0
	// Read until every partition's last committed record has been seen (a
	// transaction's last record sits just before its commit marker), or,
	// when the newest transaction was aborted, until two polls come back
	// empty: the state topic is small (compacted, one key per step).
	for len(ends) > 0 && empty < 2 && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		f := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = err
			}
		})
		n := 0
		f.EachRecord(func(r *kgo.Record) {
			n++
			if string(r.Key) == s.step.Spec.Name {
				latest = r.Value
			}
			if end, ok := ends[r.Partition]; ok && r.Offset >= end-2 {
				delete(ends, r.Partition)
			}
		})
		if n == 0 {
			empty++
		} else {
			empty = 0
		}
	}
	if latest == nil {
		if fetchErr != nil {
			return fmt.Errorf("reading %s: %w", topic, fetchErr)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := sp.RestoreState(latest); err != nil {
		return fmt.Errorf("restoring step %q from %s: %w", s.step.Spec.Name, topic, err)
	}
	s.log.Info("resumed with learned policy state", zap.String("topic", topic))
	return nil
}
