package stages

import (
	"encoding/json"
	"runtime/debug"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/schemas"
)

// Downstream feedback: the workflow's structure in the running bandit.
//
// A step learns from its own attempts when they commit. What its choice
// does later (a model whose output passes here but makes the next step
// retry on costlier models, or fail) only shows when the batch ends: when
// the last step delivers it, or any step dead-letters it. The stage that
// ends a batch writes, in the same transaction that routes it, one report
// per earlier step to that step's feedback topic: the model that served
// the batch there, what every later step spent on it (the batch carries
// each step's attempts and cost in its envelope's spent list), and whether
// it was delivered. Each earlier step's consumers read their feedback topic
// with their input and apply each report to the policy in the transaction
// that commits its offset, with the policy's state: a report counts once,
// survives restarts, and is not counted again after an abort, a replay or
// a rebalance. Steps in other processes work the same way; a step's
// reports are shared among its consumers as its input is.

// feedbackReport is one record of a step's feedback topic (JSON).
type feedbackReport struct {
	BatchID          string  `json:"batch_id"`
	Step             string  `json:"step"`              // the step it reports to
	Model            string  `json:"model"`             // the model that passed the batch on there
	Context          string  `json:"context,omitempty"` // the model that served the step before it
	DownstreamCostMs float64 `json:"downstream_cost_ms"`
	Delivered        bool    `json:"delivered"`
	EndedAt          string  `json:"ended_at"`     // the step where the batch ended
	ServedAtMs       int64   `json:"served_at_ms"` // when Step passed it on
	EndedAtMs        int64   `json:"ended_at_ms"`
}

// downstream is a report for the policy: model i's batch cost cost after
// this step and was (or was not) delivered; delay is how long after this
// step passed it on the report was read.
type downstream struct {
	context   string
	model     int
	cost      float64
	delivered bool
	delay     time.Duration
}

// feedbackRecords are the reports for a batch that ends here: spent lists
// what each step that passed it on took, endCost what this step spent if
// it did not (a dead letter), delivered whether it reached the workflow's
// output.
func (s *Stage) feedbackRecords(id string, spent []schemas.Spent, endCost float64, delivered bool, now time.Time) []*kgo.Record {
	var out []*kgo.Record
	cost := endCost // what the steps after spent[j] spent, walking back
	for j := len(spent) - 1; j >= 0; j-- {
		e := spent[j]
		if topic := s.feedbackTopics[e.Step]; topic != "" {
			up := ""
			if j > 0 {
				up = spent[j-1].Model
			}
			v, _ := json.Marshal(feedbackReport{BatchID: id, Step: e.Step, Model: e.Model, Context: up, DownstreamCostMs: cost, Delivered: delivered,
				EndedAt: s.step.Spec.Name, ServedAtMs: e.AtMs, EndedAtMs: now.UnixMilli()}) // strings, numbers, bools: cannot fail
			out = append(out, &kgo.Record{Topic: topic, Key: []byte(id), Value: v})
		}
		cost += e.CostMs
	}
	return out
}

// readFeedback turns a record of the step's feedback topic into what the
// policy learns; a report it cannot use (malformed, another step's, a
// model the step no longer has) is logged and skipped: it is advice, and
// its batch has ended either way.
func (s *Stage) readFeedback(r *kgo.Record) route {
	var fb feedbackReport
	if err := json.Unmarshal(r.Value, &fb); err != nil {
		s.log.Warn("skipping a feedback record that is not a report", zap.String("topic", r.Topic), zap.Int64("offset", r.Offset), zap.Error(err))
		return route{}
	}
	if fb.Step != s.step.Spec.Name {
		s.log.Warn("skipping a feedback record for another step", zap.String("topic", r.Topic), zap.String("for", fb.Step))
		return route{}
	}
	i := slices.IndexFunc(s.step.Models, func(m Slot) bool { return m.Name == fb.Model })
	if i < 0 {
		s.log.Info("skipping feedback about a model the step no longer has", zap.String("model", fb.Model), zap.String("batch_id", fb.BatchID))
		return route{}
	}
	d := &downstream{context: fb.Context, model: i, cost: fb.DownstreamCostMs, delivered: fb.Delivered}
	if fb.ServedAtMs > 0 {
		d.delay = s.now().Sub(time.UnixMilli(fb.ServedAtMs))
	}
	return route{feedback: d}
}

// observeDownstreamLocked applies one report (s.mu held).
func (s *Stage) observeDownstreamLocked(d *downstream) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("policy failed to learn from downstream feedback", zap.Any("panic", p), zap.String("stack", firstFrames(debug.Stack())))
		}
	}()
	s.setContextLocked(d.context)
	if o, ok := s.policy.(bandit.DownstreamObserver); ok {
		o.ObserveDownstream(d.model, d.cost, d.delivered)
	}
}

// countFeedback adds a committed report to the stage's counters.
func (s *Stage) countFeedback(d *downstream) {
	ms := d.delay.Milliseconds()
	s.stats.Feedback.Add(1)
	s.stats.FeedbackDelayMs.Add(ms)
	if ms > s.stats.FeedbackDelayMaxMs.Load() { // transact is the only writer
		s.stats.FeedbackDelayMaxMs.Store(ms)
	}
}

// inputTopics are the topics the stage reads: its in and retry topics, and
// its feedback topic when it has later steps.
func (s *Stage) inputTopics() []string {
	spec := s.step.Spec
	t := []string{spec.Topics.In, spec.Topics.Retry}
	if spec.Topics.Feedback != "" {
		t = append(t, spec.Topics.Feedback)
	}
	return t
}
