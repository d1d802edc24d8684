package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
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
	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/workflow"
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
	// contexts is policy when the step keeps one per upstream model
	// (policy context: upstream), and leaders each context's leader
	// tracker; nil otherwise.
	contexts *bandit.Contextual
	leaders  map[string]*bandit.Leader
	// feedbackTopics maps each step with later steps to its feedback topic.
	feedbackTopics map[string]string
	leader         *bandit.Leader

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
	stopped       atomic.Bool // Run returned
	closeDeadline time.Duration
	now           func() time.Time
	limits        limits
	sessionTO     time.Duration
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
	// EndUs is the time spent flushing and ending transactions, and
	// WaitUs the time a transaction waited for its batches' results, in
	// microseconds.
	EndUs  atomic.Int64
	WaitUs atomic.Int64
	// Downstream reports applied (feedback.go), their summed and largest
	// delay from this step passing the batch on to the report being read.
	Feedback           atomic.Int64
	FeedbackDelayMs    atomic.Int64
	FeedbackDelayMaxMs atomic.Int64
	leader             atomic.Value // string
}

// Snapshot is a point-in-time copy of a stage's counters.
type Snapshot struct {
	Step                                         string
	Batches, Attempts, Next, Retry, DLQ, Aborted int64
	Commits                                      int64
	// EndMs and WaitMs are the summed time spent flushing and ending
	// transactions, and waiting for their batches' results.
	EndMs, WaitMs float64
	Leader        string
	// Downstream reports applied, and their mean and largest delay (ms)
	// from this step passing the batch on to the report being applied.
	Feedback                                int64
	FeedbackDelayMeanMs, FeedbackDelayMaxMs float64
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

// WithMaxMessageBytes sets the largest record, in bytes, the stage produces
// to any topic (default: each topic's max.message.bytes, read from the
// brokers when a session starts). Outputs over it are failed attempts and
// dead letters over it leave their value out; see limits.go.
func WithMaxMessageBytes(n int) Option { return func(s *Stage) { s.limits.fixed = n } }

// WithSessionTimeout sets how long the group waits for a consumer that
// stopped heartbeating before it hands the consumer's partitions to others
// (default 10s). A restarted consumer rejoins at once under its instance
// name (static membership), so this bounds only a consumer that is gone
// for good.
func WithSessionTimeout(d time.Duration) Option { return func(s *Stage) { s.sessionTO = d } }

// DefaultMaxPoll is how many batches one transaction covers unless
// WithMaxPoll says otherwise.
const DefaultMaxPoll = 32

// WithMaxPoll bounds how many batches one transaction covers (default
// DefaultMaxPoll); workers start at most that many batches ahead of it.
func WithMaxPoll(n int) Option {
	return func(s *Stage) {
		if n > 0 {
			s.maxPoll = n
		}
	}
}

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

// leaderMargin is by how much a challenger's share of a step's recent first
// places must exceed the leader's before it becomes the step's top-ranked
// model (bandit.NewLeader).
const leaderMargin = 0.2

// NewStage prepares a consumer for step on the Kafka cluster cfg describes.
func NewStage(step *Step, cfg stream.Config, opts ...Option) (*Stage, error) {
	s := &Stage{
		step: step, kafka: cfg, log: zap.NewNop(),
		leader: bandit.NewLeader(leaderMargin), maxPoll: DefaultMaxPoll, bufs: bufPool{max: 64 << 20}, workers: runtime.GOMAXPROCS(0), closeDeadline: 10 * time.Second, now: time.Now,
		sessionTO: DefaultSessionTimeout,
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
		if p.Context == workflow.PolicyContextUpstream {
			c := bandit.NewContextual(func(seed uint64) bandit.Policy {
				q, _ := bandit.New(p.Name, len(step.Models), bandit.Params(p.Params), seed) // checked above
				return q
			}, p.Seed)
			s.policy, s.contexts, s.leaders = c, c, map[string]*bandit.Leader{"": s.leader}
		}
	}
	if s.instance == "" {
		s.instance, _ = os.Hostname()
	}
	s.feedbackTopics = map[string]string{}
	for _, st := range step.Workflow.Steps {
		if st.Topics.Feedback != "" {
			s.feedbackTopics[st.Name] = st.Topics.Feedback
		}
	}
	s.log = stream.Quiet(s.log, 10*time.Second).With(zap.String("step", step.Spec.Name), zap.String("instance", s.instance))
	s.stats.leader.Store("")
	return s, nil
}

// Ready reports whether the stage has joined its group and received its
// assignment (possibly empty, when a step has more consumers than
// partitions).
func (s *Stage) Ready() bool { return s.ready.Load() }

// Stopped reports whether Run has returned.
func (s *Stage) Stopped() bool { return s.stopped.Load() }

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
	snap := Snapshot{
		Step: s.step.Spec.Name, Batches: s.stats.Batches.Load(), Attempts: s.stats.Attempts.Load(),
		Next: s.stats.Next.Load(), Retry: s.stats.Retry.Load(), DLQ: s.stats.DLQ.Load(),
		Aborted: s.stats.Aborted.Load(), Commits: s.stats.Commits.Load(), Leader: s.stats.leader.Load().(string),
		Feedback: s.stats.Feedback.Load(), FeedbackDelayMaxMs: float64(s.stats.FeedbackDelayMaxMs.Load()),
		EndMs: float64(s.stats.EndUs.Load()) / 1000, WaitMs: float64(s.stats.WaitUs.Load()) / 1000,
	}
	if snap.Feedback > 0 {
		snap.FeedbackDelayMeanMs = float64(s.stats.FeedbackDelayMs.Load()) / float64(snap.Feedback)
	}
	return snap
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
	defer s.stopped.Store(true)
	restored := false
	backoff := stream.NewBackoff(250*time.Millisecond, 5*time.Second)
	for {
		began := s.now()
		err := s.session(ctx, &restored)
		if err == nil || ctx.Err() != nil {
			s.leaveGroup()
			s.log.Info("stage stopped")
			return nil
		}
		if s.now().Sub(began) > time.Minute {
			backoff.Reset() // the session ran: this is a new failure, not the same one again
		}
		wait := backoff.Next()
		s.log.Warn("kafka session failed; starting a new one", zap.Error(err), zap.Duration("backoff", wait))
		if stream.Sleep(ctx, wait) != nil {
			s.leaveGroup()
			return nil
		}
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
	s.limits.load(ctx, s.kafka, s.log, []string{spec.Topics.In, spec.Topics.Retry, spec.Topics.DLQ, spec.Output,
		s.step.Workflow.Topics.Traces, s.step.Workflow.Topics.State})
	fetchMax := s.limits.fetchMax(spec.Topics.In, spec.Topics.Retry)
	opts := append(s.kafka.TransactOpts(spec.Group, txnID, s.inputTopics()...),
		kgo.WithHooks(a),
		// Static membership: a restarted consumer takes its place back at
		// once instead of the group waiting out its session.
		kgo.InstanceID(s.instance),
		kgo.SessionTimeout(s.sessionTO),
		kgo.ProducerBatchMaxBytesFn(s.limits.producerMax),
		kgo.FetchMaxPartitionBytes(fetchMax),
		kgo.FetchMaxBytes(max(50<<20, 2*fetchMax)),
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
	// Fence a crashed predecessor with this transactional id at once. Its
	// open transaction keeps the group's offsets unstable, and joining would
	// otherwise wait for the broker to time that transaction out (40 s).
	pctx, cancel := context.WithTimeout(ctx, s.closeDeadline)
	_, _, perr := sess.Client().ProducerID(pctx)
	cancel()
	if perr != nil && ctx.Err() == nil {
		s.log.Warn("could not initialize the transactional producer yet; the client retries", zap.String("transactional_id", txnID), zap.Error(perr))
	}
	if !*restored {
		if err := s.restore(ctx); err != nil {
			s.log.Warn("starting without learned state", zap.Error(err))
		}
		*restored = true
	}
	a.start(s.workers)
	s.log.Info("stage started", zap.String("group", spec.Group), zap.String("transactional_id", txnID),
		zap.Strings("topics", s.inputTopics()),
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
//
// What the policy learns from the poll's attempts is applied here, with the
// transaction, never when a worker makes the attempt: a batch whose
// transaction aborts (a broker or rebalance, fencing, a record the broker
// refused) is processed again, and its first attempts must not count. A
// policy that saves its state applies them before its state record joins
// the transaction and rolls them back if it does not commit; any other
// policy applies them once the transaction has committed.
func (s *Stage) transact(ctx context.Context, sess *kgo.GroupTransactSession, a *ahead, fetches kgo.Fetches) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("step %q: beginning a transaction: %w", s.step.Spec.Name, err)
	}
	var produceErr atomic.Value
	var refused refusals
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			if isTooLarge(err) {
				refused.add(r.Topic, size(r))
			}
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
	waitFrom := time.Now()
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
	endFrom := time.Now()
	s.stats.WaitUs.Add(endFrom.Sub(waitFrom).Microseconds())
	sp, stateful := s.policy.(bandit.Stateful)
	var before []byte
	if stateful && !abort {
		before = s.learn(sp, routed)
	}
	if st := s.stateRecord(); st != nil && len(routed) > 0 && !abort {
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
	// Processed again after the abort, a batch too large for what the
	// broker takes goes the too-large way (limits.go).
	for topic, n := range refused.largest() {
		s.log.Warn("the broker refused a record as too large; lowering the limit the stage checks for its topic (is --max-message-bytes above the topic's max.message.bytes?)",
			zap.String("topic", topic), zap.Int("bytes", n), zap.Int("limit", s.limits.refused(topic, n)))
	}
	commit := kgo.TryCommit
	if abort || produceErr.Load() != nil {
		commit = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, commit)
	s.stats.EndUs.Add(time.Since(endFrom).Microseconds())
	if !committed || err != nil {
		s.unlearn(sp, before)
	}
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
	if !stateful {
		s.learn(nil, routed)
	}
	s.stats.Commits.Add(1)
	for _, rt := range routed {
		if rt.feedback != nil {
			s.countFeedback(rt.feedback)
		}
		if rt.trace == nil {
			continue // a feedback report, or a record skipped
		}
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

// learn applies the attempts of routed to the policy, in poll order. For a
// stateful policy (sp non-nil) it first saves the state to roll back to.
func (s *Stage) learn(sp bandit.Stateful, routed []route) (before []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp != nil {
		b, err := sp.MarshalState()
		if err != nil {
			s.log.Warn("policy state not saved; what this transaction learns is kept even if it aborts", zap.Error(err))
		}
		before = b
	}
	for _, rt := range routed {
		if rt.feedback != nil {
			s.observeDownstreamLocked(rt.feedback)
		}
		if rt.learned == nil {
			continue
		}
		s.observeLocked(rt.learned)
	}
	return before
}

// unlearn rolls a stateful policy back to before, the state learn saved.
func (s *Stage) unlearn(sp bandit.Stateful, before []byte) {
	if sp == nil || before == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := sp.RestoreState(before); err != nil {
		s.log.Warn("policy state not rolled back after an abort", zap.Error(err))
	}
}

// observation is one attempt, for the policy to learn from once its
// transaction commits.
type observation struct {
	model   int
	passed  bool
	cost    float64
	context string // the policy context it was ranked in (contextual steps)
}

// route is what processing one record decided, for the counters.
type route struct {
	outcome  string
	attempts int
	trace    *schemas.Trace
	learned  *observation // nil when no model was called
	feedback *downstream  // a downstream report read from the feedback topic
}

// process walks one Kafka record down the data path and returns the records
// to produce: the routed batch and its trace. It returns an error only when
// the stage is shutting down mid-attempt. A panic anywhere on the path (a
// policy, an assertion, the stage itself) never takes the process down: the
// record is dead-lettered with the panic as its reason.
func (s *Stage) process(ctx context.Context, r *kgo.Record) (recs []*kgo.Record, rt route, err error) {
	start := s.now()
	defer func() {
		if p := recover(); p != nil {
			cause := fmt.Errorf("panic while processing: %v\n%s", p, firstFrames(debug.Stack()))
			s.log.Error("processing a record panicked; dead-lettering it", zap.String("topic", r.Topic),
				zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(cause))
			var trace *schemas.Trace
			recs, trace = s.poison(r, start, cause, "could not process")
			rt, err = route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
		}
	}()
	if fb := s.step.Spec.Topics.Feedback; fb != "" && r.Topic == fb {
		return nil, s.readFeedback(r), nil
	}
	return s.walk(ctx, r, start)
}

// walk is process without its panic guard.
func (s *Stage) walk(ctx context.Context, r *kgo.Record, start time.Time) ([]*kgo.Record, route, error) {
	spec := s.step.Spec

	// decode
	batch, err := s.step.In.Decode(r.Value)
	if err != nil {
		recs, trace := s.poison(r, start, err, "could not decode")
		return recs, route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
	}
	if len(batch.Records) == 0 {
		// Nothing for a model to answer: dead-letter it, visibly, rather
		// than pass an empty batch through every step.
		recs, trace := s.poison(r, start, errEmptyBatch, "refused")
		return recs, route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
	}
	if batch.Step != spec.Name {
		batch.Step, batch.Attempt, batch.Tried, batch.StepCostMs = spec.Name, 0, nil, 0 // first visit to this step
	}

	// rank (the attempt's time is taken under the lock, so traces ordered by
	// time show decisions in the order the policy made them, even when a
	// poll's batches are processed concurrently)
	ctxKey := s.contextOf(batch)
	s.mu.Lock()
	s.setContextLocked(ctxKey)
	decided := s.now()
	d, rankErr := s.rankLocked()
	changed, from, leader, ests := d.changed, d.from, d.leader, d.ests
	pick, pos := -1, 0
	for p, i := range s.rank {
		if !slices.Contains(batch.Tried, s.step.Models[i].Name) {
			pick, pos = i, p
			break
		}
	}
	s.mu.Unlock()
	if rankErr != nil {
		s.log.Error("policy failed to rank; trying the models in workflow order", zap.Error(rankErr))
	}
	if changed {
		s.stats.leader.Store(leader)
		fromName := "(none)"
		if from >= 0 {
			fromName = s.step.Models[from].Name
		}
		fields := []zap.Field{zap.String("from", fromName), zap.String("to", leader), zap.Any("estimates", ests)}
		if s.contexts != nil {
			fields = append(fields, zap.String("after", ctxKey))
		}
		s.log.Info("top-ranked model switched", fields...)
	} else if leader != "" && s.contexts == nil {
		// (A contextual step's leader is stored when one of its contexts
		// switches: its batches move between contexts all the time.)
		s.stats.leader.Store(leader)
	}

	trace := &schemas.Trace{
		BatchID: batch.ID, Workflow: s.step.Workflow.Name, Step: spec.Name,
		Attempt: batch.Attempt + 1, Tried: batch.Tried, TsUs: decided.UnixMicro(),
		Records: len(batch.Records), Leader: leader, Estimates: ests, Features: summarize(batch.Records, s.step.In.Numeric),
		Context: ctxKey,
	}
	trace.AttemptID = fmt.Sprintf("%s/%s/%d", batch.ID, spec.Name, trace.Attempt)
	if pick < 0 {
		// Every model was tried already (the workflow lost models since).
		trace.Verdict, trace.Outcome = schemas.VerdictError, schemas.OutcomeDLQ
		trace.Error = fmt.Sprintf("no untried model left at step %q (tried: %v)", spec.Name, batch.Tried)
		recs := append(s.emit(r, batch, trace, nil), s.feedbackRecords(batch.ID, batch.Spent, batch.StepCostMs, false, s.now())...)
		return recs, route{outcome: schemas.OutcomeDLQ, trace: trace}, nil
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
	cost := slot.Cost(latency)
	trace.LatencyUs = latency.Microseconds()

	// assert, and check the answer fits the output schema
	var passed *kgo.Record    // the output batch, when it passes
	var spent []schemas.Spent // what it took, with this step's part, when it passes
	if err != nil {
		trace.Verdict, trace.Error = schemas.VerdictError, err.Error()
	} else {
		res := s.evaluate(batch.Records, out)
		trace.RecordsPassed = res.Passed
		for j, n := range res.Failed {
			trace.Assertions = append(trace.Assertions, schemas.AssertionCount{Name: s.step.Asserts.Names()[j], Failed: n})
		}
		if res.Verdict {
			next := &schemas.Batch{ID: batch.ID, Workflow: batch.Workflow, Step: spec.Name, Attempt: trace.Attempt,
				Tried: append(slices.Clone(batch.Tried), slot.Name), CreatedAtMs: batch.CreatedAtMs, Records: out,
				Events: batch.Events, Served: append(slices.Clone(batch.Served), spec.Name+"="+slot.Name),
				Spent: append(slices.Clone(batch.Spent), schemas.Spent{Step: spec.Name, Model: slot.Name, Attempts: trace.Attempt,
					CostMs: batch.StepCostMs + cost, AtMs: s.now().UnixMilli()})}
			spent = next.Spent
			v, err := s.step.Out.Encode(s.encodeBuf(len(r.Value)), next)
			if err != nil {
				trace.Verdict = schemas.VerdictError
				trace.Error = fmt.Sprintf("model %q answered records that do not fit output schema %s: %v", slot.Name, s.step.Out.Record, err)
			} else {
				// The batch keeps its record's key (a source keys its batches by
				// source partition), so batches of one key stay in order.
				key := r.Key
				if key == nil {
					key = []byte(batch.ID)
				}
				passed = &kgo.Record{Topic: spec.Output, Key: key, Value: v, Context: s.pooled,
					Headers: stream.Headers(batch.ID, next.Attempt, next.Tried, "")}
				trace.Verdict = schemas.VerdictPass
			}
			if passed != nil {
				if n, big := s.limits.tooLarge(passed); big {
					trace.Verdict = schemas.VerdictError
					trace.Error = fmt.Sprintf("model %q passed, but its output batch (%d bytes) is more than topic %s takes (%d bytes): split the step's input into smaller batches, or raise the topic's max.message.bytes and --max-message-bytes",
						slot.Name, n, spec.Output, s.limits.of(spec.Output))
					s.recycle(passed)
					passed = nil
				}
			}
		} else {
			trace.Verdict, trace.Error = schemas.VerdictFail, fmt.Sprintf("model %q: %s", slot.Name, res.Reason)
		}
	}

	// learn, once the transaction commits (transact)
	learned := &observation{model: pick, passed: trace.Verdict == schemas.VerdictPass, cost: cost, context: ctxKey}

	// route
	batch.Attempt = trace.Attempt
	batch.StepCostMs += cost
	batch.Tried = append(slices.Clone(batch.Tried), slot.Name)
	switch {
	case trace.Verdict == schemas.VerdictPass:
		trace.Outcome = schemas.OutcomeNext
	case len(batch.Tried) < len(s.step.Models):
		trace.Outcome = schemas.OutcomeRetry
	default:
		trace.Outcome = schemas.OutcomeDLQ
	}
	recs := s.emit(r, batch, trace, passed)
	// A batch that ends here reports to every step that passed it on.
	switch {
	case trace.Outcome == schemas.OutcomeNext && spec.Index == len(s.step.Workflow.Steps)-1:
		recs = append(recs, s.feedbackRecords(batch.ID, spent, 0, true, s.now())...)
	case trace.Outcome == schemas.OutcomeDLQ:
		recs = append(recs, s.feedbackRecords(batch.ID, batch.Spent, batch.StepCostMs, false, s.now())...)
	}
	return recs, route{outcome: trace.Outcome, attempts: 1, trace: trace, learned: learned}, nil
}

// emit builds the routed record for trace.Outcome and the trace record.
// passed is the output batch's record when the outcome is next. r is the
// record the batch came in, for size limits and dead letters.
func (s *Stage) emit(r *kgo.Record, batch *schemas.Batch, trace *schemas.Trace, passed *kgo.Record) []*kgo.Record {
	spec := s.step.Spec
	key := []byte(batch.ID)
	var routed *kgo.Record
	switch trace.Outcome {
	case schemas.OutcomeNext:
		routed = passed
	default:
		value, err := s.step.In.Encode(s.encodeBuf(len(r.Value)), batch)
		ctx := s.pooled
		if err != nil { // cannot happen for a batch we decoded; keep the original bytes
			value, ctx = r.Value, nil
		}
		if trace.Outcome == schemas.OutcomeRetry {
			routed = &kgo.Record{Topic: spec.Topics.Retry, Key: key, Value: value, Context: ctx, Headers: stream.Headers(batch.ID, batch.Attempt, batch.Tried, "")}
			n, big := s.limits.tooLarge(routed)
			if !big {
				break
			}
			trace.Outcome = schemas.OutcomeDLQ
			trace.Error = fmt.Sprintf("%s; the batch (%d bytes) is more than retry topic %s takes (%d bytes), so it is dead-lettered without trying the step's other models",
				trace.Error, n, spec.Topics.Retry, s.limits.of(spec.Topics.Retry))
		}
		reason := fmt.Sprintf("step %q: no model passed the batch after %d attempts; last: %s", spec.Name, batch.Attempt, trace.Error)
		routed = &kgo.Record{Topic: spec.Topics.DLQ, Key: key, Value: value, Context: ctx, Headers: stream.Headers(batch.ID, batch.Attempt, batch.Tried, reason)}
		s.fitDeadLetter(r, routed)
	}
	return []*kgo.Record{routed, s.traceRecord(key, trace)}
}

// fitDeadLetter leaves out the value of a dead letter too large for its
// topic, keeping its headers and reason (limits.go).
func (s *Stage) fitDeadLetter(src, dlq *kgo.Record) {
	n, big := s.limits.tooLarge(dlq)
	if !big {
		return
	}
	limit := s.limits.of(dlq.Topic)
	s.log.Warn("dead letter too large for its topic; its value is left out", zap.String("topic", dlq.Topic),
		zap.Int("bytes", n), zap.Int("max_message_bytes", limit),
		zap.String("source", fmt.Sprintf("%s/%d/%d", src.Topic, src.Partition, src.Offset)))
	v := dlq.Value
	omitValue(dlq, src, n, limit)
	if dlq.Context == s.pooled {
		s.bufs.put(v)
		dlq.Context = nil
	}
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
func (s *Stage) poison(r *kgo.Record, start time.Time, cause error, what string) ([]*kgo.Record, *schemas.Trace) {
	spec := s.step.Spec
	id := stream.Header(r, stream.HeaderBatchID)
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	}
	attempt, _ := strconv.Atoi(stream.Header(r, stream.HeaderAttempt))
	reason := fmt.Sprintf("step %q %s the record at %s/%d offset %d: %v", spec.Name, what, r.Topic, r.Partition, r.Offset, cause)
	s.log.Warn("dead-lettering a record", zap.String("batch_id", id), zap.String("reason", reason))
	h := stream.Headers(id, attempt, nil, reason)
	if tried := stream.Header(r, stream.HeaderTried); tried != "" {
		h[2].Value = []byte(tried)
	}
	dlq := &kgo.Record{Topic: spec.Topics.DLQ, Key: r.Key, Value: r.Value, Headers: h}
	s.fitDeadLetter(r, dlq)
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

// errEmptyBatch is why a batch of no records is dead-lettered.
var errEmptyBatch = errors.New("the batch has no records, so there is nothing for a model to answer; producers should send at least one record per batch")

// decision is what the policy said for one batch.
type decision struct {
	changed bool // the leader changed, from from
	from    int
	leader  string
	ests    []schemas.Estimate
}

// rankLocked asks the policy for its estimates and ranking into s.est and
// s.rank (s.mu held). A policy that panics or answers nonsense does not
// stop the step: the models are ranked in workflow order, and err says
// what failed.
func (s *Stage) rankLocked() (d decision, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("policy %s panicked: %v\n%s", s.step.Spec.Policy.Name, p, firstFrames(debug.Stack()))
		}
		if err != nil {
			s.rank = s.rank[:0]
			for i := range s.step.Models {
				s.rank = append(s.rank, i)
			}
			d = decision{}
		}
	}()
	k := len(s.step.Models)
	if s.est = s.policy.Estimates(s.est); len(s.est) != k {
		return d, fmt.Errorf("policy %s returned %d estimates for %d models", s.step.Spec.Policy.Name, len(s.est), k)
	}
	d.ests = make([]schemas.Estimate, k)
	for i, e := range s.est {
		d.ests[i] = schemas.Estimate{Model: s.step.Models[i].Name, PassProb: e.PassProb, CostMs: e.Cost, Score: e.Score(), Pulls: e.Pulls}
	}
	if s.rank = s.policy.Rank(s.rank); !isPermutation(s.rank, k) {
		return d, fmt.Errorf("policy %s ranked %v, not an order of the step's %d models", s.step.Spec.Policy.Name, s.rank, k)
	}
	d.changed, d.from = s.leader.Update(s.rank[0], s.est)
	if l := s.leader.Current(); l >= 0 {
		d.leader = s.step.Models[l].Name
	}
	return d, nil
}

// observeLocked tells the policy about one committed attempt (s.mu held);
// a panic in the policy is logged and the attempt stays routed as decided.
func (s *Stage) observeLocked(o *observation) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("policy failed to learn from an attempt; the attempt is routed as decided",
				zap.String("policy", s.step.Spec.Policy.Name), zap.Any("panic", p), zap.String("stack", firstFrames(debug.Stack())))
		}
	}()
	s.setContextLocked(o.context)
	s.policy.Observe(o.model, o.passed, o.cost)
}

// contextOf is the policy context a batch is ranked in: the model that
// served the previous step, for a contextual step; "" otherwise.
func (s *Stage) contextOf(b *schemas.Batch) string {
	if s.contexts == nil || len(b.Spent) == 0 {
		return ""
	}
	return b.Spent[len(b.Spent)-1].Model
}

// setContextLocked points a contextual policy, and the leader its
// rankings are tracked by, at context key (s.mu held): each context has
// its own top-ranked model, so moving between contexts is no switch.
func (s *Stage) setContextLocked(key string) {
	if s.contexts == nil {
		return
	}
	s.contexts.SetContext(key)
	l, ok := s.leaders[key]
	if !ok {
		l = bandit.NewLeader(leaderMargin)
		s.leaders[key] = l
	}
	s.leader = l
}

// evaluate runs the step's assertions; a panic in them fails the batch with
// the panic as the reason.
func (s *Stage) evaluate(in, out []models.Record) assert.Result { return s.step.evaluate(in, out) }

// isPermutation reports whether rank orders exactly the indices 0..k-1.
func isPermutation(rank []int, k int) bool {
	if len(rank) != k {
		return false
	}
	var buf [16]bool // a step's models, without allocating
	seen := buf[:]
	if k > len(buf) {
		seen = make([]bool, k)
	}
	for _, i := range rank {
		if i < 0 || i >= k || seen[i] {
			return false
		}
		seen[i] = true
	}
	return true
}
