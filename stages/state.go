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
	"github.com/flexiflow/flexiflow/stream"
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

// stateEnds lists, per partition of the state topic that holds committed
// records, its last stable offset. An empty map means nothing was saved.
func stateEnds(ctx context.Context, cfg stream.Config, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	lsos, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	lsos.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Partition < 0 {
			return
		}
		if st, ok := starts.Lookup(topic, o.Partition); ok && st.Err == nil && o.Offset > st.Offset {
			ends[o.Partition] = o.Offset
		}
	})
	return ends, nil
}

// restore loads the latest saved state for this step, if any.
func (s *Stage) restore(ctx context.Context) error {
	sp, ok := s.policy.(bandit.Stateful)
	if !ok {
		return nil
	}
	topic := s.step.Workflow.Topics.State
	ends, err := stateEnds(ctx, s.kafka, topic)
	if err != nil {
		return err
	}
	if len(ends) == 0 {
		return nil // nothing saved yet: start from the prior at once
	}
	cl, err := kgo.NewClient(append(s.kafka.ClientOpts(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
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
