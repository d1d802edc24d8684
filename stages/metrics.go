package stages

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/schemas"
)

// Metrics are the Prometheus series stages record. One Metrics serves every
// stage of a process; create it with NewMetrics and pass it to each stage
// with WithMetrics.
type Metrics struct {
	batches  *prometheus.CounterVec   // step, outcome
	attempts *prometheus.CounterVec   // step, model, verdict
	latency  *prometheus.HistogramVec // step, model
	passProb *prometheus.GaugeVec     // step, model
	costMs   *prometheus.GaugeVec     // step, model
	aborted  *prometheus.CounterVec   // step
	leader   *prometheus.GaugeVec     // step, model: 1 for the leader
	assigned *prometheus.GaugeVec     // step: partitions this process holds
	lag      *prometheus.GaugeVec     // step, topic, partition: records behind the last stable offset
}

// NewMetrics registers FlexiFlow's stage metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flexiflow_batches_total",
			Help: "Batches a stage finished with, by step and outcome (next, retry, dlq)."}, []string{"step", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flexiflow_attempts_total",
			Help: "Model attempts by step, model and verdict (pass, fail, error)."}, []string{"step", "model", "verdict"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flexiflow_attempt_latency_seconds",
			Help:    "Model call duration per attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, []string{"step", "model"}),
		passProb: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flexiflow_bandit_pass_probability",
			Help: "The step's policy's current estimate of each model's pass probability."}, []string{"step", "model"}),
		costMs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flexiflow_bandit_cost_ms",
			Help: "The step's policy's current estimate of each model's cost per attempt."}, []string{"step", "model"}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flexiflow_transactions_aborted_total",
			Help: "Transactions aborted; their batches are processed again."}, []string{"step"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flexiflow_leader",
			Help: "1 for each step's top-ranked model, 0 for the others."}, []string{"step", "model"}),
		assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flexiflow_assigned_partitions",
			Help: "Partitions of a step's input and retry topics this process consumes."}, []string{"step"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flexiflow_consumer_lag",
			Help: "Records a stage is behind on each partition it consumes (last stable offset minus its position), as of its latest poll of that partition."}, []string{"step", "topic", "partition"}),
	}
	for _, c := range []prometheus.Collector{m.batches, m.attempts, m.latency, m.passProb, m.costMs, m.aborted, m.leader, m.assigned, m.lag} {
		f(c)
	}
	return m
}

// WithMetrics makes the stage record Prometheus metrics.
func WithMetrics(m *Metrics) Option { return func(s *Stage) { s.metrics = m } }

// observeLag records, for each partition a poll returned records from, how
// far the stage is behind the partition's last stable offset (read_committed
// consumers see no further) once it has those records.
func (m *Metrics) observeLag(step string, fetches kgo.Fetches) {
	if m == nil {
		return
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		end := p.LastStableOffset
		if end < 0 {
			end = p.HighWatermark
		}
		next := p.Records[len(p.Records)-1].Offset + 1
		m.lag.WithLabelValues(step, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(0, end-next)))
	})
}

// observeAttempt records one finished attempt.
func (m *Metrics) observeAttempt(t *schemas.Trace) {
	if m == nil {
		return
	}
	m.batches.WithLabelValues(t.Step, t.Outcome).Inc()
	if t.Model == "" {
		return
	}
	m.attempts.WithLabelValues(t.Step, t.Model, t.Verdict).Inc()
	m.latency.WithLabelValues(t.Step, t.Model).Observe(float64(t.LatencyUs) / 1e6)
	for _, e := range t.Estimates {
		m.passProb.WithLabelValues(t.Step, e.Model).Set(e.PassProb)
		m.costMs.WithLabelValues(t.Step, e.Model).Set(e.CostMs)
		v := 0.0
		if e.Model == t.Leader {
			v = 1
		}
		m.leader.WithLabelValues(t.Step, e.Model).Set(v)
	}
}
