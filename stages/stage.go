package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stream"
)

// Stage consumes one workflow step. Run it with Run; it is one member of the
// step's consumer group, so several Stages (in one process or many) share
// the step's partitions.
type Stage struct {
	step   *Step
	kafka  stream.Config
	log    *zap.Logger
	policy bandit.Policy
	leader *bandit.Leader

	mu    sync.Mutex // guards policy, leader and the scratch slices
	rank  []int
	est   []bandit.Estimate
	stats Stats

	maxPoll       int
	workers       int
	bufs          bufPool         // encoded batch buffers, reused after Kafka acknowledges them
	pooled        context.Context // marks records whose value came from bufs
	instance      string
	metrics       *Metrics
	ready         atomic.Bool // joined the group with an assignment
	closeDeadline time.Duration
	now           func() time.Time
}

// pooledKey marks the context of records whose value is a pooled buffer.
type pooledKey struct{}

// Stats counts what a stage did; read it with Snapshot.
type Stats struct {
	Batches  atomic.Int64 // Kafka records consumed
	Attempts atomic.Int64
	Next     atomic.Int64
	Retry    atomic.Int64
	DLQ      atomic.Int64
	Aborted  atomic.Int64 // transactions aborted (batches will be read again)
	Commits  atomic.Int64 // transactions committed
	leader   atomic.Value // string
}

// Snapshot is a point-in-time copy of a stage's counters.
type Snapshot struct {
	Step                                         string
	Batches, Attempts, Next, Retry, DLQ, Aborted int64
	Commits                                      int64
	Leader                                       string
}

// Option configures a Stage.
type Option func(*Stage)

// WithLogger sets the stage's logger.
func WithLogger(l *zap.Logger) Option { return func(s *Stage) { s.log = l } }

// WithPolicy replaces the policy the workflow file names (tests, benchmarks).
func WithPolicy(p bandit.Policy) Option { return func(s *Stage) { s.policy = p } }

// WithInstance names this consumer among the step's consumers (default: the
// host name). It makes the stage's Kafka transactional id,
// "<group>-<instance>", stable across restarts, so a restarted stage fences
// its crashed predecessor at once instead of waiting out its transaction.
// Every consumer of a step needs its own instance name.
func WithInstance(id string) Option { return func(s *Stage) { s.instance = id } }

// WithMaxPoll bounds how many batches one transaction covers (default 32).
func WithMaxPoll(n int) Option { return func(s *Stage) { s.maxPoll = n } }

// WithWorkers sets how many batches go down the data path at once (default:
// the number of CPUs the process may use). Workers start on fetched batches
// before they are polled, while the previous transaction commits, up to one
// poll's worth (WithMaxPoll) ahead. Models then run concurrently: a model
// that is not safe for concurrent use needs 1. A value below 1 keeps the
// default.
func WithWorkers(n int) Option {
	return func(s *Stage) {
		if n >= 1 {
			s.workers = n
		}
	}
}

// NewStage prepares a consumer for step on the Kafka cluster cfg describes.
func NewStage(step *Step, cfg stream.Config, opts ...Option) (*Stage, error) {
	s := &Stage{
		step: step, kafka: cfg, log: zap.NewNop(),
		leader: bandit.NewLeader(0.1), maxPoll: 32, bufs: bufPool{max: 64 << 20}, workers: runtime.GOMAXPROCS(0), closeDeadline: 10 * time.Second, now: time.Now,
	}
	s.pooled = context.WithValue(context.Background(), pooledKey{}, true)
	for _, o := range opts {
		o(s)
	}
	if s.policy == nil {
		p := step.Spec.Policy
		pol, err := bandit.New(p.Name, len(step.Models), bandit.Params(p.Params), p.Seed)
		if err != nil {
			line := step.Workflow.Line("steps", step.Spec.Index, "policy")
			return nil, fmt.Errorf("%s:%d: step %q: %w", step.Workflow.File, line, step.Spec.Name, err)
		}
		s.policy = pol
	}
	if s.instance == "" {
		s.instance, _ = os.Hostname()
	}
	s.log = s.log.With(zap.String("step", step.Spec.Name), zap.String("instance", s.instance))
	s.stats.leader.Store("")
	return s, nil
}

// Ready reports whether the stage has joined its group and received its
// assignment (possibly empty, when a step has more consumers than
// partitions).
func (s *Stage) Ready() bool { return s.ready.Load() }

// assigned tracks the partitions this stage holds.
func (s *Stage) assigned(parts map[string][]int32, sign int) {
	n := 0
	for _, ps := range parts {
		n += len(ps)
	}
	if s.metrics != nil {
		s.metrics.assigned.WithLabelValues(s.step.Spec.Name).Add(float64(sign * n))
	}
	if sign > 0 {
		s.ready.Store(true)
	}
}

// Snapshot returns the stage's counters.
func (s *Stage) Snapshot() Snapshot {
	return Snapshot{
		Step: s.step.Spec.Name, Batches: s.stats.Batches.Load(), Attempts: s.stats.Attempts.Load(),
		Next: s.stats.Next.Load(), Retry: s.stats.Retry.Load(), DLQ: s.stats.DLQ.Load(),
		Aborted: s.stats.Aborted.Load(), Commits: s.stats.Commits.Load(), Leader: s.stats.leader.Load().(string),
	}
}

// Run consumes until ctx is cancelled, then finishes or aborts the open
// transaction, leaves the group and returns nil.
//
// When the Kafka session fails (the broker went away mid-transaction, the
// transactional producer was fenced or timed out), the open transaction is
// abandoned, so Kafka aborts it and its batches are read again, and Run
// starts a new session after a backoff, so Run returns only when ctx ends.
// (If two consumers share an instance name they fence each other in turn;
// the log says so and how to fix it.)
func (s *Stage) Run(ctx context.Context) error {
	restored := false
	backoff := time.Second
	for {
		err := s.session(ctx, &restored)
		if err == nil || ctx.Err() != nil {
			s.log.Info("stage stopped")
			return nil
		}
		s.log.Warn("kafka session failed; starting a new one", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// session runs one Kafka session until ctx ends (nil) or it fails.
func (s *Stage) session(ctx context.Context, restored *bool) error {
	spec := s.step.Spec
	txnID := spec.Group + "-" + s.instance
	// Batches go down the data path as soon as they are fetched (see
	// ahead); they are produced by the transaction that polls them.
	actx, stopAhead := context.WithCancel(ctx)
	a := newAhead(actx, s.maxPoll, s.process, s.discard)
	defer func() {
		stopAhead()
		a.close()
	}()
	opts := append(s.kafka.TransactOpts(spec.Group, txnID, spec.Topics.In, spec.Topics.Retry),
		kgo.WithHooks(a),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { s.assigned(a, +1) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { s.assigned(r, -1) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { s.assigned(l, -1) }),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("step %q: kafka client: %w", spec.Name, err)
	}
	defer func() {
		s.ready.Store(false)
		sess.Close()
	}()
	if !*restored {
		if err := s.restore(ctx); err != nil {
			s.log.Warn("starting without learned state", zap.Error(err))
		}
		*restored = true
	}
	a.start(s.workers)
	s.log.Info("stage started", zap.String("group", spec.Group), zap.String("transactional_id", txnID),
		zap.Strings("topics", []string{spec.Topics.In, spec.Topics.Retry}),
		zap.String("output", spec.Output), zap.Strings("models", s.step.ModelNames()))

	for {
		fetches := sess.PollRecords(ctx, s.maxPoll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.log.Warn("fetch error; the client retries", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		s.metrics.observeLag(s.step.Spec.Name, fetches)
		if err := s.transact(ctx, sess, a, fetches); err != nil {
			return err
		}
	}
}

// transact processes one poll's records inside one transaction.
func (s *Stage) transact(ctx context.Context, sess *kgo.GroupTransactSession, a *ahead, fetches kgo.Fetches) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("step %q: beginning a transaction: %w", s.step.Spec.Name, err)
	}
	var produceErr atomic.Value
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, fmt.Errorf("producing to %s: %w", r.Topic, err))
		}
		s.recycle(r)
	}
	var (
		abort  bool
		routed []route
	)
	// Records are produced under a context that shutdown does not cancel:
	// a record cancelled mid-transaction could otherwise be dropped from a
	// transaction that still commits the offsets it consumed. Shutdown
	// instead aborts the transaction (errShutdown) or lets it finish.
	produceCtx := context.WithoutCancel(ctx)
	// The workers have usually processed these batches already, while the
	// previous transaction committed; each batch's records are produced in
	// poll order as soon as its result is there.
	for _, r := range fetches.Records() {
		out, rt, err := a.take(r)
		if err != nil {
			abort = true // shutting down: leave the batch for the next owner
			break
		}
		for _, o := range out {
			if o != nil {
				sess.Produce(produceCtx, o, promise)
			}
		}
		routed = append(routed, rt)
	}
	if st := s.stateRecord(); st != nil && len(routed) > 0 {
		sess.Produce(produceCtx, st, promise) // what was learned commits with what was done
	}
	// End the transaction even when ctx is already cancelled, so a stopping
	// stage commits (or cleanly aborts) what it started. Every record is
	// flushed (acknowledged or failed) before deciding: a transaction that
	// commits its offsets must hold every record it produced, so one that
	// failed, however late, turns the commit into an abort.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.closeDeadline)
	defer cancel()
	if !abort {
		if err := sess.Client().Flush(endCtx); err != nil {
			produceErr.CompareAndSwap(nil, fmt.Errorf("flushing the transaction's records: %w", err))
		}
	}
	commit := kgo.TryCommit
	if abort || produceErr.Load() != nil {
		commit = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, commit)
	if errors.Is(err, kerr.ProducerFenced) {
		return fmt.Errorf("step %q: transactional id %s-%s was fenced: a restarted or second consumer with the same instance name took over, or the transaction outlived its timeout; give every consumer of a step its own --instance-id: %w",
			s.step.Spec.Name, s.step.Spec.Group, s.instance, err)
	}
	if err != nil {
		return fmt.Errorf("step %q: ending a transaction: %w", s.step.Spec.Name, err)
	}
	if !committed {
		s.stats.Aborted.Add(1)
		if s.metrics != nil {
			s.metrics.aborted.WithLabelValues(s.step.Spec.Name).Inc()
		}
		if pe := produceErr.Load(); pe != nil {
			s.log.Warn("transaction aborted; its batches will be processed again", zap.Error(pe.(error)))
		}
		return nil
	}
	s.stats.Commits.Add(1)
	for _, rt := range routed {
		s.metrics.observeAttempt(rt.trace)
		s.stats.Batches.Add(1)
		s.stats.Attempts.Add(int64(rt.attempts))
		switch rt.outcome {
		case schemas.OutcomeNext:
			s.stats.Next.Add(1)
		case schemas.OutcomeRetry:
			s.stats.Retry.Add(1)
		case schemas.OutcomeDLQ:
			s.stats.DLQ.Add(1)
		}
	}
	return nil
}

// route is what processing one record decided, for the counters.
type route struct {
	outcome  string
	attempts int
	trace    *schemas.Trace
}

// process walks one Kafka record down the data path and returns the records
// to produce: the routed batch and its trace. It returns an error only when
// the stage is shutting down mid-attempt.
func (s *Stage) process(ctx context.Context, r *kgo.Record) ([]*kgo.Record, route, error) {
	spec := s.step.Spec
	start := s.now()

	// decode
	batch, err := s.step.In.Decode(r.Value)
	if err != nil {
		recs, trace := s.poison(r, start, err)
		return recs, route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
	}
	if batch.Step != spec.Name {
		batch.Step, batch.Attempt, batch.Tried = spec.Name, 0, nil // first visit to this step
	}

	// rank (the attempt's time is taken under the lock, so traces ordered by
	// time show decisions in the order the policy made them, even when a
	// poll's batches are processed concurrently)
	s.mu.Lock()
	decided := s.now()
	s.est = s.policy.Estimates(s.est)
	changed, from := s.leader.Update(s.est)
	leader := ""
	if l := s.leader.Current(); l >= 0 {
		leader = s.step.Models[l].Name
	}
	ests := make([]schemas.Estimate, len(s.est))
	for i, e := range s.est {
		ests[i] = schemas.Estimate{Model: s.step.Models[i].Name, PassProb: e.PassProb, CostMs: e.Cost, Score: e.Score(), Pulls: e.Pulls}
	}
	s.rank = s.policy.Rank(s.rank)
	pick, pos := -1, 0
	for p, i := range s.rank {
		if !slices.Contains(batch.Tried, s.step.Models[i].Name) {
			pick, pos = i, p
			break
		}
	}
	s.mu.Unlock()
	if changed {
		s.stats.leader.Store(leader)
		fromName := "(none)"
		if from >= 0 {
			fromName = s.step.Models[from].Name
		}
		s.log.Info("top-ranked model switched", zap.String("from", fromName), zap.String("to", leader), zap.Any("estimates", ests))
	} else if leader != "" {
		s.stats.leader.Store(leader)
	}

	trace := &schemas.Trace{
		BatchID: batch.ID, Workflow: s.step.Workflow.Name, Step: spec.Name,
		Attempt: batch.Attempt + 1, Tried: batch.Tried, TsUs: decided.UnixMicro(),
		Records: len(batch.Records), Leader: leader, Estimates: ests, Features: summarize(batch.Records, s.step.In.Numeric),
	}
	trace.AttemptID = fmt.Sprintf("%s/%s/%d", batch.ID, spec.Name, trace.Attempt)
	if pick < 0 {
		// Every model was tried already (the workflow lost models since).
		trace.Verdict, trace.Outcome = schemas.VerdictError, schemas.OutcomeDLQ
		trace.Error = fmt.Sprintf("no untried model left at step %q (tried: %v)", spec.Name, batch.Tried)
		return s.emit(r, batch, trace, nil), route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
	}
	slot := s.step.Models[pick]
	trace.Model, trace.RankPosition = slot.Name, pos

	// invoke
	callStart := time.Now()
	out, err := invoke(ctx, slot, batch.Records)
	latency := time.Since(callStart)
	if errors.Is(err, errShutdown) {
		return nil, route{}, err
	}
	trace.LatencyUs = latency.Microseconds()

	// assert, and check the answer fits the output schema
	var passed []byte
	if err != nil {
		trace.Verdict, trace.Error = schemas.VerdictError, err.Error()
	} else {
		res := s.step.Asserts.Evaluate(batch.Records, out)
		trace.RecordsPassed = res.Passed
		for j, n := range res.Failed {
			trace.Assertions = append(trace.Assertions, schemas.AssertionCount{Name: s.step.Asserts.Names()[j], Failed: n})
		}
		if res.Verdict {
			next := &schemas.Batch{ID: batch.ID, Workflow: batch.Workflow, Step: spec.Name, Attempt: trace.Attempt,
				Tried: append(slices.Clone(batch.Tried), slot.Name), CreatedAtMs: batch.CreatedAtMs, Records: out}
			if passed, err = s.step.Out.Encode(s.encodeBuf(len(r.Value)), next); err != nil {
				trace.Verdict = schemas.VerdictError
				trace.Error = fmt.Sprintf("model %q answered records that do not fit output schema %s: %v", slot.Name, s.step.Out.Record, err)
			} else {
				trace.Verdict = schemas.VerdictPass
			}
		} else {
			trace.Verdict, trace.Error = schemas.VerdictFail, fmt.Sprintf("model %q: %s", slot.Name, res.Reason)
		}
	}

	// learn
	s.mu.Lock()
	s.policy.Observe(pick, trace.Verdict == schemas.VerdictPass, slot.Cost(latency))
	s.mu.Unlock()

	// route
	batch.Attempt = trace.Attempt
	batch.Tried = append(slices.Clone(batch.Tried), slot.Name)
	switch {
	case trace.Verdict == schemas.VerdictPass:
		trace.Outcome = schemas.OutcomeNext
	case len(batch.Tried) < len(s.step.Models):
		trace.Outcome = schemas.OutcomeRetry
	default:
		trace.Outcome = schemas.OutcomeDLQ
	}
	return s.emit(r, batch, trace, passed), route{outcome: trace.Outcome, attempts: 1, trace: trace}, nil
}

// emit builds the routed record for trace.Outcome and the trace record.
// passed is the encoded output batch when the outcome is next.
func (s *Stage) emit(r *kgo.Record, batch *schemas.Batch, trace *schemas.Trace, passed []byte) []*kgo.Record {
	spec := s.step.Spec
	key := []byte(batch.ID)
	var routed *kgo.Record
	switch trace.Outcome {
	case schemas.OutcomeNext:
		routed = &kgo.Record{Topic: spec.Output, Key: key, Value: passed, Context: s.pooled,
			Headers: stream.Headers(batch.ID, batch.Attempt, batch.Tried, "")}
	default:
		value, err := s.step.In.Encode(s.encodeBuf(len(r.Value)), batch)
		ctx := s.pooled
		if err != nil { // cannot happen for a batch we decoded; keep the original bytes
			value, ctx = r.Value, nil
		}
		topic, reason := spec.Topics.Retry, ""
		if trace.Outcome == schemas.OutcomeDLQ {
			topic = spec.Topics.DLQ
			reason = fmt.Sprintf("step %q: no model passed the batch after %d attempts; last: %s", spec.Name, batch.Attempt, trace.Error)
		}
		routed = &kgo.Record{Topic: topic, Key: key, Value: value, Context: ctx, Headers: stream.Headers(batch.ID, batch.Attempt, batch.Tried, reason)}
	}
	return []*kgo.Record{routed, s.traceRecord(key, trace)}
}

// encodeBuf returns an empty buffer sized for a batch encoded from an input
// of n bytes, so encoding does not grow (and copy) its output again and
// again: a batch's output is usually about as large as its input. Buffers
// come back through recycle once Kafka has acknowledged their record.
func (s *Stage) encodeBuf(n int) []byte {
	return s.bufs.get(n + n/4 + 512)
}

// discard recycles the outputs of a batch that will not be produced.
func (s *Stage) discard(out []*kgo.Record) {
	for _, o := range out {
		if o != nil {
			s.recycle(o)
		}
	}
}

// recycle returns a produced record's value to the buffer pool when the
// stage encoded it (marked by its Context), after Kafka is done with it.
func (s *Stage) recycle(r *kgo.Record) {
	if r.Context != s.pooled || r.Value == nil {
		return
	}
	s.bufs.put(r.Value)
	r.Value = nil
}

// poison dead-letters a record that does not decode, keeping its bytes.
func (s *Stage) poison(r *kgo.Record, start time.Time, cause error) ([]*kgo.Record, *schemas.Trace) {
	spec := s.step.Spec
	id := stream.Header(r, stream.HeaderBatchID)
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	}
	attempt, _ := strconv.Atoi(stream.Header(r, stream.HeaderAttempt))
	reason := fmt.Sprintf("step %q could not decode the record at %s/%d offset %d: %v", spec.Name, r.Topic, r.Partition, r.Offset, cause)
	s.log.Warn("dead-lettering undecodable record", zap.String("batch_id", id), zap.String("reason", reason))
	h := stream.Headers(id, attempt, nil, reason)
	if tried := stream.Header(r, stream.HeaderTried); tried != "" {
		h[2].Value = []byte(tried)
	}
	dlq := &kgo.Record{Topic: spec.Topics.DLQ, Key: r.Key, Value: r.Value, Headers: h}
	trace := &schemas.Trace{
		AttemptID: fmt.Sprintf("%s/%s/poison-%d-%d", id, spec.Name, r.Partition, r.Offset), BatchID: id,
		Workflow: s.step.Workflow.Name, Step: spec.Name, TsUs: start.UnixMicro(),
		Verdict: schemas.VerdictPoison, Error: reason, Outcome: schemas.OutcomeDLQ,
	}
	return []*kgo.Record{dlq, s.traceRecord([]byte(id), trace)}, trace
}

func (s *Stage) traceRecord(key []byte, t *schemas.Trace) *kgo.Record {
	v, err := s.step.Traces.Encode(nil, t)
	if err != nil {
		s.log.Error("encoding trace failed; the attempt is routed but not traced", zap.String("attempt_id", t.AttemptID), zap.Error(err))
		return nil
	}
	return &kgo.Record{Topic: s.step.Workflow.Topics.Traces, Key: key, Value: v,
		Headers: stream.Headers(t.BatchID, t.Attempt, t.Tried, "")}
}
