package plan

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// MinTraces is how many traces a model needs before FromTraces profiles
// it, unless ProfileOptions says otherwise.
const MinTraces = 20

// Profile is what a plan is made from: the broker's costs and, per step
// and model, what the traces say. It is saved as JSON (plan profile
// --out) so that plans can be made offline.
type Profile struct {
	Workflow string `json:"workflow"`
	// Source says where the traces came from.
	Source string `json:"source"`
	// Traces is how many of the workflow's traces the profile read.
	Traces int `json:"traces"`
	// RecordsPerBatch is the mean number of records per batch at the
	// first step.
	RecordsPerBatch float64 `json:"records_per_batch"`
	Broker          Broker  `json:"broker"`
	// StageCPUMs is the CPU one attempt costs the stage besides its model
	// (decoding, ranking, assertions, encoding, the trace, the Kafka
	// client), in milliseconds of one core; 0 leaves it out of the
	// simulation. plan validate measures it; in production it is
	// process_cpu_seconds_total over flexiflow_attempts_total.
	StageCPUMs float64        `json:"stage_cpu_ms"`
	Steps      []StepProfile  `json:"steps"`
	Ingest     *IngestProfile `json:"ingest,omitempty"`
	// Notes are what profiling noticed and a user should know.
	Notes []string `json:"notes,omitempty"`
}

// Broker is what the Kafka cluster costs a stage, in milliseconds.
type Broker struct {
	// CommitMs is one transaction's flush and commit (offsets included)
	// when it holds one record; CommitPerRecordMs is what each further
	// record adds.
	CommitMs          Dist    `json:"commit_ms"`
	CommitPerRecordMs float64 `json:"commit_per_record_ms"`
	// CommitPerPartitionMs is what each further partition a transaction
	// writes to adds (each is added to the transaction and gets a commit
	// marker).
	CommitPerPartitionMs float64 `json:"commit_per_partition_ms"`
	// CommitBackToBackMs is the same for a transaction that produces its
	// first record within BackToBackMs of the previous commit: the broker
	// may still be writing that one's markers, and the client retries
	// after a backoff.
	CommitBackToBackMs Dist `json:"commit_back_to_back_ms"`
	// ProduceMs is one acknowledged produce round trip.
	ProduceMs Dist `json:"produce_ms"`
	// FetchMs is how long a committed record takes to reach a consumer
	// waiting for it.
	FetchMs Dist `json:"fetch_ms"`
	// CPU is the broker's CPU per transaction, when it runs on the
	// machine that calibrated it; nil when it runs elsewhere.
	CPU *BrokerCPU `json:"cpu,omitempty"`
	// Measured says where the figures come from.
	Measured string `json:"measured"`
}

// BrokerCPU is the CPU the broker spends on a stage's transaction, in
// milliseconds of one core: TxnMs for each, RequestMs for each produce (or
// fetch) request, AppendMs for each partition's
// records in each produce request (the records a partition gets in one
// request are appended to its log at once), PartitionMs for each partition
// it writes to (its commit marker), AddMs for each request that writes to
// partitions new to the transaction (the client adds them first, and the
// coordinator logs the transaction's partitions again). It is measured
// when the broker runs on the calibrating machine, whose Cores it then
// shares with whatever else runs there (plan validate's stages, on a
// laptop or a test machine); IdleCores is what the machine's other
// processes kept busy at rest.
type BrokerCPU struct {
	TxnMs       float64 `json:"txn_ms"`
	RequestMs   float64 `json:"request_ms"`
	AppendMs    float64 `json:"append_ms"`
	PartitionMs float64 `json:"partition_ms"`
	AddMs       float64 `json:"add_ms"`
	Cores       int     `json:"cores"`
	IdleCores   float64 `json:"idle_cores"`
}

// BackToBackMs is how soon after a commit a transaction's first record
// must be produced for its commit to be drawn from CommitBackToBackMs.
const BackToBackMs = 2.0

// IngestProfile is the workflow's source, when it has one: events are
// batched by at most MaxRecords or Linger.
type IngestProfile struct {
	Topic      string  `json:"topic"`
	MaxRecords int     `json:"max_records"`
	LingerMs   float64 `json:"linger_ms"`
}

// StepProfile is one step as its traces show it.
type StepProfile struct {
	Name   string         `json:"name"`
	Models []ModelProfile `json:"models"`
	// Cascade is the order the policy settled on: the model it tries
	// first most often, then the one it falls back to most often, and so
	// on.
	Cascade []string `json:"cascade"`
	// FirstChoice is, over the newest tenth of the step's first
	// attempts, the share that went to each model, leaving out models
	// tried first on under a tenth of them (exploration): where the
	// policy settled.
	FirstChoice map[string]float64 `json:"first_choice"`
	// AttemptsPerBatch is the mean number of attempts a batch took at the
	// step; RetryShare the share of attempts that were retries.
	AttemptsPerBatch float64 `json:"attempts_per_batch"`
	RetryShare       float64 `json:"retry_share"`
	// Feedback says whether the step reads downstream reports (every
	// step but the last).
	Feedback bool `json:"feedback"`
}

// ModelProfile is one model of a step.
type ModelProfile struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Wait says the model waits (a served model, sim.sleep) rather than
	// computes: its calls do not compete for the consumer's cores.
	Wait bool `json:"wait"`
	// MaxConcurrency caps the calls in flight per consumer (0: none).
	MaxConcurrency int `json:"max_concurrency"`
	// Capacity is how many calls the model's server serves at once across
	// all consumers before they queue (0: unbounded).
	Capacity int `json:"capacity"`
	// Traces is how many attempts the profile read.
	Traces int `json:"traces"`
	// LatencyMs is the latency distribution at the mean records per
	// batch; PerRecordMs how much it grows per record (least squares).
	LatencyMs   Dist    `json:"latency_ms"`
	PerRecordMs float64 `json:"per_record_ms"`
	MeanRecords float64 `json:"mean_records"`
	// Pass is the probability that an attempt passes, over the recent
	// traces; PassOverTime the same per window of traces, oldest first.
	Pass         float64  `json:"pass"`
	PassOverTime []Window `json:"pass_over_time"`
	// ByAttempt is how many attempts the model took at each attempt
	// number (index 0: first attempts).
	ByAttempt []int `json:"by_attempt"`
}

// Window is a model's pass rate over consecutive traces.
type Window struct {
	FromUs   int64   `json:"from_us"`
	ToUs     int64   `json:"to_us"`
	Attempts int     `json:"attempts"`
	Pass     float64 `json:"pass"`
}

// Dist is an empirical distribution: its quantiles at DistProbs.
type Dist struct {
	Mean float64   `json:"mean"`
	P50  float64   `json:"p50"`
	P99  float64   `json:"p99"`
	Q    []float64 `json:"quantiles"`
}

// DistProbs are the probabilities Dist.Q holds quantiles at: every 5%,
// then 99% and the maximum, so the tail that p99 depends on is kept.
var DistProbs = func() []float64 {
	p := make([]float64, 0, 22)
	for i := 0; i <= 19; i++ {
		p = append(p, float64(i)*0.05)
	}
	return append(p, 0.99, 1)
}()

// NewDist summarises samples (any order; it sorts a copy).
func NewDist(samples []float64) Dist {
	if len(samples) == 0 {
		return Dist{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	d := Dist{Q: make([]float64, len(DistProbs))}
	for i, p := range DistProbs {
		d.Q[i] = quantile(s, p)
	}
	var sum float64
	for _, v := range s {
		sum += v
	}
	d.Mean, d.P50, d.P99 = sum/float64(len(s)), quantile(s, 0.5), quantile(s, 0.99)
	return d
}

// Const is a distribution that is always v.
func Const(v float64) Dist { return NewDist([]float64{v}) }

// quantile of sorted s at p, interpolated.
func quantile(s []float64, p float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	x := p * float64(len(s)-1)
	i := int(x)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := x - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}

// at is the quantile at u in [0, 1): the inverse of the distribution
// function, interpolated between the kept quantiles.
func (d *Dist) at(u float64) float64 {
	q := d.Q
	switch len(q) {
	case 0:
		return d.Mean
	case 1:
		return q[0]
	}
	var i int
	var lo, hi float64
	if u < 0.95 {
		i = int(u * 20)
		lo, hi = float64(i)*0.05, float64(i+1)*0.05
	} else if u < 0.99 {
		i, lo, hi = 19, 0.95, 0.99
	} else {
		i, lo, hi = 20, 0.99, 1
	}
	f := (u - lo) / (hi - lo)
	return q[i]*(1-f) + q[i+1]*f
}

// ProfileOptions tune FromTraces.
type ProfileOptions struct {
	// MinTraces is how many traces a model the cascade reaches needs
	// (default MinTraces).
	MinTraces int
	// Recent is the share of each model's traces, newest, that its pass
	// probability and the first choices are taken from (default 0.5).
	Recent float64
	// Capacity is, per model name, its server's capacity.
	Capacity map[string]int
	// Source says where the traces came from, for the profile.
	Source string
}

// waitKinds are the model kinds whose calls wait on something else
// rather than compute in the stage's process.
var waitKinds = map[string]bool{"sim.sleep": true, "kserve": true}

// FromTraces profiles wf's steps and models from traces (any order).
// broker is the cluster's measured costs. A model with too few traces, or
// traces from another workflow, is an error that says what to do.
func FromTraces(wf *workflow.Workflow, traces []*schemas.Trace, broker Broker, o ProfileOptions) (*Profile, error) {
	if o.MinTraces <= 0 {
		o.MinTraces = MinTraces
	}
	if o.Recent <= 0 || o.Recent > 1 {
		o.Recent = 0.5
	}
	others := map[string]int{}
	byStep := map[string]map[string][]*schemas.Trace{}
	n := 0
	for _, t := range traces {
		if t.Workflow != wf.Name {
			others[t.Workflow]++
			continue
		}
		if byStep[t.Step] == nil {
			byStep[t.Step] = map[string][]*schemas.Trace{}
		}
		byStep[t.Step][t.Model] = append(byStep[t.Step][t.Model], t)
		n++
	}
	if n == 0 {
		if len(others) > 0 {
			var names []string
			for w, c := range others {
				names = append(names, fmt.Sprintf("%s (%d)", w, c))
			}
			slices.Sort(names)
			return nil, fmt.Errorf("the traces are from workflow %s, not %q: read the traces topic of %q (%s), or give the workflow file they were made with",
				strings.Join(names, ", "), wf.Name, wf.Name, wf.Topics.Traces)
		}
		return nil, fmt.Errorf("no traces of workflow %q: run it on some batches first (flexiflow plan validate --workflow FILE --brokers B --default --batches 500 does), then profile %s",
			wf.Name, wf.Topics.Traces)
	}
	p := &Profile{Workflow: wf.Name, Source: o.Source, Traces: n, Broker: broker}
	if wf.Source != nil {
		p.Ingest = &IngestProfile{Topic: wf.Source.Topic, MaxRecords: wf.Source.Batch.MaxRecords, LingerMs: float64(wf.Source.Batch.Linger) / 1e6}
	}
	var problems []string
	for i, step := range wf.Steps {
		sp := StepProfile{Name: step.Name, FirstChoice: map[string]float64{}, Feedback: i < len(wf.Steps)-1}
		models := byStep[step.Name]
		batches := map[string]bool{}
		attempts := 0
		var firstTries []*schemas.Trace
		second := map[string]int{}
		for _, m := range step.Models {
			ts := models[m.Name]
			slices.SortFunc(ts, func(a, b *schemas.Trace) int { return cmp.Compare(a.TsUs, b.TsUs) })
			mp := ModelProfile{Name: m.Name, Kind: m.KindName(), Wait: waitKinds[m.KindName()], MaxConcurrency: m.MaxConcurrency,
				Capacity: o.Capacity[m.Name], Traces: len(ts)}
			if len(ts) > 0 && len(ts) < o.MinTraces {
				problems = append(problems, fmt.Sprintf("step %s, model %s: %d traces, and profiling needs at least %d", step.Name, m.Name, len(ts), o.MinTraces))
			}
			profileModel(&mp, ts, o.Recent)
			for _, t := range ts {
				batches[t.BatchID] = true
				attempts++
				for len(mp.ByAttempt) < t.Attempt {
					mp.ByAttempt = append(mp.ByAttempt, 0)
				}
				if t.Attempt >= 1 {
					mp.ByAttempt[t.Attempt-1]++
				}
				if t.Attempt == 1 {
					firstTries = append(firstTries, t)
				}
				if t.Attempt == 2 {
					second[m.Name]++
				}
			}
			sp.Models = append(sp.Models, mp)
		}
		if len(batches) == 0 {
			problems = append(problems, fmt.Sprintf("step %s: no traces", step.Name))
			p.Steps = append(p.Steps, sp)
			continue
		}
		sp.AttemptsPerBatch = float64(attempts) / float64(len(batches))
		sp.RetryShare = 1 - float64(len(batches))/float64(attempts)
		recentFirst := settledFirstChoices(firstTries)
		for name, c := range recentFirst {
			sp.FirstChoice[name] = float64(c) / float64(sumCounts(recentFirst))
		}
		sp.Cascade = cascade(sp, recentFirst, second)
		// A model without traces ends the cascade: no batch reached it
		// (every one passed before it), so the plan routes none to it.
		for k, name := range sp.Cascade {
			if sp.model(name).Traces == 0 {
				if k > 0 {
					p.Notes = append(p.Notes, fmt.Sprintf("step %s: model %s has no traces: every batch passed before it, so the plan routes none to it", step.Name, name))
				}
				sp.Cascade = sp.Cascade[:k]
				break
			}
		}
		if len(sp.Cascade) == 0 {
			problems = append(problems, fmt.Sprintf("step %s: no model has traces", step.Name))
		}
		p.Steps = append(p.Steps, sp)
		if i == 0 {
			var recs, cnt float64
			for _, ts := range models {
				for _, t := range ts {
					if t.Attempt == 1 {
						recs += float64(t.Records)
						cnt++
					}
				}
			}
			if cnt > 0 {
				p.RecordsPerBatch = recs / cnt
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("too few traces to profile workflow %q (%d read from %s):\n  %s\nrun more batches through it (flexiflow plan validate --workflow FILE --brokers B --default --batches N writes traces), or lower --min-traces",
			wf.Name, n, o.Source, strings.Join(problems, "\n  "))
	}
	return p, nil
}

// settledFirstChoices counts, over the newest tenth of a step's first
// attempts, which model each went to, leaving out the models the policy
// only explored (under a tenth of them): the choices it settled on.
func settledFirstChoices(firsts []*schemas.Trace) map[string]int {
	if len(firsts) == 0 {
		return nil
	}
	slices.SortFunc(firsts, func(a, b *schemas.Trace) int { return cmp.Compare(a.TsUs, b.TsUs) })
	recent := firsts[len(firsts)-max(1, len(firsts)/10):]
	counts := map[string]int{}
	for _, t := range recent {
		counts[t.Model]++
	}
	for name, c := range counts {
		if float64(c) < 0.1*float64(len(recent)) {
			delete(counts, name)
		}
	}
	return counts
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// cascade orders a step's models: by how often the policy tried each
// first recently, then by how often it fell back to each, then by the
// workflow's order.
func cascade(sp StepProfile, first, second map[string]int) []string {
	names := make([]string, len(sp.Models))
	for i, m := range sp.Models {
		names[i] = m.Name
	}
	idx := func(n string) int { return slices.Index(names, n) }
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		if c := cmp.Compare(first[b], first[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(second[b], second[a]); c != 0 {
			return c
		}
		return cmp.Compare(idx(a), idx(b))
	})
	return out
}

// profileModel fills a model's latency and pass figures from its traces
// (sorted by time).
func profileModel(mp *ModelProfile, ts []*schemas.Trace, recent float64) {
	if len(ts) == 0 {
		return
	}
	lat := make([]float64, len(ts))
	var sx, sy, sxx, sxy float64
	for i, t := range ts {
		y, x := float64(t.LatencyUs)/1000, float64(t.Records)
		lat[i] = y
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	nf := float64(len(ts))
	mp.MeanRecords = sx / nf
	if v := sxx/nf - mp.MeanRecords*mp.MeanRecords; v > 1e-9 {
		mp.PerRecordMs = max(0, (sxy/nf-mp.MeanRecords*sy/nf)/v)
	}
	// The distribution is of latency at the mean records per batch.
	for i, t := range ts {
		lat[i] -= mp.PerRecordMs * (float64(t.Records) - mp.MeanRecords)
		lat[i] = max(lat[i], 0)
	}
	mp.LatencyMs = NewDist(lat)
	passed := func(ts []*schemas.Trace) float64 {
		c := 0
		for _, t := range ts {
			if t.Verdict == schemas.VerdictPass {
				c++
			}
		}
		return float64(c) / float64(len(ts))
	}
	mp.Pass = passed(ts[len(ts)-int(math.Ceil(nf*recent)):])
	windows := min(10, max(1, len(ts)/MinTraces))
	for w := range windows {
		lo, hi := w*len(ts)/windows, (w+1)*len(ts)/windows
		mp.PassOverTime = append(mp.PassOverTime, Window{FromUs: ts[lo].TsUs, ToUs: ts[hi-1].TsUs, Attempts: hi - lo, Pass: passed(ts[lo:hi])})
	}
}

func (sp *StepProfile) model(name string) *ModelProfile {
	for i := range sp.Models {
		if sp.Models[i].Name == name {
			return &sp.Models[i]
		}
	}
	return nil
}

// Check says whether p can plan wf: the same workflow, the same steps
// and models.
func (p *Profile) Check(wf *workflow.Workflow) error {
	if p.Workflow != wf.Name {
		return fmt.Errorf("the profile was made from workflow %q's traces, not %q's: profile this workflow's traces (flexiflow plan profile --workflow FILE --traces-from B --out profile.json)", p.Workflow, wf.Name)
	}
	if len(p.Steps) != len(wf.Steps) {
		return fmt.Errorf("the profile of workflow %q has %d steps and the workflow file %d: it was made from another version of the workflow; profile it again", wf.Name, len(p.Steps), len(wf.Steps))
	}
	for i, s := range wf.Steps {
		sp := p.Steps[i]
		if sp.Name != s.Name {
			return fmt.Errorf("the profile's step %d is %q and the workflow's %q: profile the workflow again", i+1, sp.Name, s.Name)
		}
		for _, name := range sp.Cascade {
			if !slices.ContainsFunc(s.Models, func(m *workflow.Model) bool { return m.Name == name }) {
				return fmt.Errorf("the profile's step %s has model %q, which the workflow's does not: profile the workflow again", s.Name, name)
			}
		}
	}
	return nil
}
