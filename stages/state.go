package stages

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// restore loads the latest saved state for this step, if any.
func (s *Stage) restore(ctx context.Context) error {
	sp, ok := s.policy.(bandit.Stateful)
	if !ok {
		return nil
	}
	topic := s.step.Workflow.Topics.State
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
	// Read until the topic has been quiet for two short polls: the state
	// topic is small (compacted, one key per step).
	for empty < 2 && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
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
