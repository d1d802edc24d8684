package summary

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
)

// Report is the summary of one run.
type Report struct {
	Workflow         string  `json:"workflow"`
	Produced         int     `json:"produced"`
	Delivered        int     `json:"delivered"`
	DeadLettered     int     `json:"dead_lettered"`
	Duplicates       int     `json:"duplicates"` // batches seen in more than one final place, or twice in one
	Lost             int     `json:"lost"`       // produced batches found in no final place
	WallSeconds      float64 `json:"wall_seconds"`
	BatchesPerSecond float64 `json:"batches_per_second"`
	// CostMsPerDelivered is every attempt's cost at every step (the
	// attempt's runtime in ms, what an unpriced model costs its policy),
	// summed, over the batches delivered.
	CostMsPerDelivered float64       `json:"cost_ms_per_delivered"`
	Phases             []PhaseReport `json:"phases"`
	Steps              []StepReport  `json:"steps"`
	// Feedback is, per step with later steps, the downstream reports its
	// policy learned from and how late they came (filled by the runner,
	// which has the stages' counters).
	Feedback []FeedbackReport `json:"feedback,omitempty"`
	// Walks is, per produced batch in order, what each step (in the
	// workflow's order) tried on it: to price the run's decisions with
	// an outcome table (flexiflow demo --outcomes).
	Walks [][][]Attempt `json:"-"`
	// OverheadMs is, per step, what its policy adds to every attempt's
	// cost (overhead_ms; 0 for a policy without one): what the policy
	// minimises is model time plus that.
	OverheadMs []float64 `json:"-"`
	// Priced is the run's decisions priced with an outcome table, when
	// the runner was given one.
	Priced *Priced `json:"priced,omitempty"`
}

// Attempt is one model's attempt on a batch at a step.
type Attempt struct {
	Model  string
	Passed bool
}

// Priced compares a run's decisions with an outcome table's references on
// the table's costs (see bench replay).
type Priced struct {
	Table string `json:"table"`
	// CostMsPerDelivered is the run's attempts, each costing its row's
	// cost_ms, over the batches the table says they deliver.
	CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
	Delivered          int     `json:"delivered"`
	// Disagreements counts attempts whose pass in the table differs from
	// the run's (0 with deterministic models on the table's batches).
	Disagreements int `json:"disagreements"`
	// References: oracle, static-best and clairvoyant on the same table.
	References []PricedReference `json:"references"`
	// Regret is CostMsPerDelivered over the oracle's, less 1.
	Regret float64 `json:"regret"`
	// WithOverhead prices the same decisions, and the references, with
	// each step's OverheadMs added to every attempt: the objective the
	// run's policies were given (absent when every overhead is 0).
	WithOverhead *Priced `json:"with_overhead,omitempty"`
	// OverheadMs is, per step, what WithOverhead adds to an attempt.
	OverheadMs []float64 `json:"overhead_ms,omitempty"`
}

// PricedReference is one reference policy's cost on the table.
type PricedReference struct {
	Name               string  `json:"name"`
	CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
}

// FeedbackReport is what one step heard back about the batches it passed on.
type FeedbackReport struct {
	Step        string  `json:"step"`
	Reports     int64   `json:"reports"`
	MeanDelayMs float64 `json:"mean_delay_ms"` // from passing the batch on to learning how it ended
	MaxDelayMs  float64 `json:"max_delay_ms"`
}

// PhaseReport is the workflow's result over one phase of the input.
type PhaseReport struct {
	Name              string   `json:"name"`
	Batches           int      `json:"batches"`
	Delivered         int      `json:"delivered"`
	DeadLettered      int      `json:"dead_lettered"`
	DeliveredFraction float64  `json:"delivered_fraction"`
	Accuracy          *float64 `json:"accuracy,omitempty"` // of delivered records, when a quality function is set
	// CostMsPerDelivered is the phase's batches' attempts' cost over its
	// delivered batches (see Report.CostMsPerDelivered).
	CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
	costMs             float64
}

// StepReport is one step's result.
type StepReport struct {
	Name             string  `json:"name"`
	BatchesIn        int     `json:"batches_in"`
	Delivered        int     `json:"delivered"` // passed on to the next topic
	DeadLettered     int     `json:"dead_lettered"`
	Attempts         int     `json:"attempts"`
	AttemptsPerBatch float64 `json:"attempts_per_batch"`
	FirstTryPassRate float64 `json:"first_try_pass_rate"`
	// InitialLeader and FinalLeader are the step's top-ranked model at its
	// first and last decision. A step with `context: upstream` ranks per
	// upstream model: these are then the leaders of the contexts of its
	// first and last batch, and Contexts holds every context's.
	InitialLeader string            `json:"initial_leader"`
	FinalLeader   string            `json:"final_leader"`
	Contexts      []ContextLeaders  `json:"contexts,omitempty"`
	Phases        []StepPhaseReport `json:"phases"`
	// Switches are changes of the leader within a context: a batch ranked
	// under another context than the one before is no switch.
	Switches []Switch `json:"switches"`
	// Retries are the step's attempts after a first one, and RetryGapMs
	// (mean and max) the time from the end of the attempt that failed to
	// the start of the next: the retry topic's round trip, what an attempt
	// costs beyond its model's runtime (compare the step's overhead_ms).
	Retries       int     `json:"retries"`
	RetryGapMs    float64 `json:"retry_gap_ms"`
	RetryGapMaxMs float64 `json:"retry_gap_max_ms"`
}

// ContextLeaders is one context of a contextual step: the model that
// served the previous step, and the step's leaders for its batches.
type ContextLeaders struct {
	Context       string `json:"context"`
	Decisions     int    `json:"decisions"`
	InitialLeader string `json:"initial_leader"`
	FinalLeader   string `json:"final_leader"`
	Switches      int    `json:"switches"`
}

// StepPhaseReport is one step over one phase of the input.
type StepPhaseReport struct {
	Name             string             `json:"name"`
	Batches          int                `json:"batches"`
	AttemptsPerBatch float64            `json:"attempts_per_batch"`
	FirstTryEarly    float64            `json:"first_try_pass_rate_early"` // first half of the phase
	FirstTryLate     float64            `json:"first_try_pass_rate_late"`  // second half
	Share            map[string]float64 `json:"model_share"`               // of the batches the step passed, who served them
	// Leader is the leader at the phase's last decision; for a contextual
	// step, each context's at the phase's end ("median: mlp, pca: knn").
	Leader string `json:"leader_at_end"`
}

// Switch is a change of a step's top-ranked model.
type Switch struct {
	Decision  int                `json:"decision"` // index of the step's decision at which it happened
	BatchID   string             `json:"batch_id"`
	Phase     string             `json:"phase"`
	At        time.Time          `json:"at"`
	Context   string             `json:"context,omitempty"` // a contextual step's context it happened in
	From      string             `json:"from"`
	To        string             `json:"to"`
	Estimates []schemas.Estimate `json:"estimates"`
}

// Report builds the report for the batches the producer wrote (ids in
// order) and the phases in order.
func (c *Collector) Report(produced []string, phases []string, wall time.Duration) Report {
	r := Report{Workflow: c.wf.Name, Produced: len(produced), WallSeconds: wall.Seconds()}
	if wall > 0 {
		r.BatchesPerSecond = float64(len(produced)) / wall.Seconds()
	}
	if len(phases) == 0 {
		phases = []string{"all"}
	}
	c.mu.Lock()
	ph := map[string]*PhaseReport{}
	for _, name := range phases {
		p := &PhaseReport{Name: name}
		if q := c.quality[name]; q[1] > 0 {
			acc := float64(q[0]) / float64(q[1])
			p.Accuracy = &acc
		}
		ph[name] = p
	}
	for _, id := range produced {
		p := ph[c.opts.PhaseOf(id)]
		if p == nil {
			continue
		}
		p.Batches++
		_, dead := c.dead[id]
		switch {
		case c.delivered[id] && dead:
			r.Duplicates++
		case c.delivered[id]:
			p.Delivered++
		case dead:
			p.DeadLettered++
		default:
			r.Lost++
		}
	}
	r.Duplicates += c.deadDup
	var costMs float64
	for _, ts := range c.byStep {
		for _, t := range ts {
			if p := ph[c.opts.PhaseOf(t.BatchID)]; p != nil {
				p.costMs += float64(t.LatencyUs) / 1000
				costMs += float64(t.LatencyUs) / 1000
			}
		}
	}
	c.mu.Unlock()
	for _, name := range phases {
		p := ph[name]
		if p.Batches > 0 {
			p.DeliveredFraction = float64(p.Delivered) / float64(p.Batches)
		}
		if p.Delivered > 0 {
			p.CostMsPerDelivered = p.costMs / float64(p.Delivered)
		}
		r.Delivered += p.Delivered
		r.DeadLettered += p.DeadLettered
		r.Phases = append(r.Phases, *p)
	}
	if r.Delivered > 0 {
		r.CostMsPerDelivered = costMs / float64(r.Delivered)
	}
	for _, s := range c.wf.Steps {
		r.Steps = append(r.Steps, c.stepReport(s.Name, phases))
	}
	r.Walks = c.walks(produced)
	return r
}

// walks gathers each produced batch's attempts per step, in attempt order.
func (c *Collector) walks(produced []string) [][][]Attempt {
	index := make(map[string]int, len(produced))
	for i, id := range produced {
		index[id] = i
	}
	out := make([][][]Attempt, len(produced))
	for s, st := range c.wf.Steps {
		ts := c.Traces(st.Name)
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Attempt < ts[j].Attempt })
		for _, t := range ts {
			i, ok := index[t.BatchID]
			if !ok {
				continue
			}
			if out[i] == nil {
				out[i] = make([][]Attempt, len(c.wf.Steps))
			}
			if len(out[i][s]) >= t.Attempt && t.Attempt > 0 {
				continue // a replayed attempt, traced twice
			}
			out[i][s] = append(out[i][s], Attempt{Model: t.Model, Passed: t.Verdict == schemas.VerdictPass})
		}
	}
	return out
}

func (c *Collector) stepReport(step string, phases []string) StepReport {
	traces := c.Traces(step)
	sr := StepReport{Name: step, Switches: []Switch{}}
	seen, next, dead := map[string]bool{}, map[string]bool{}, map[string]bool{}
	type phaseAcc struct {
		batches  map[string]bool
		attempts int
		first    []bool // first-attempt verdicts in order
		served   map[string]int
		passed   int
		leader   string
	}
	acc := map[string]*phaseAcc{}
	for _, name := range phases {
		acc[name] = &phaseAcc{batches: map[string]bool{}, served: map[string]int{}}
	}
	firstPass, firstN := 0, 0
	leaders := map[string]*ContextLeaders{} // by context; one, "", for a step without contexts
	var order []string
	ended := map[string]int64{} // batch → when its last attempt here ended (µs)
	gapSum := 0.0
	for i, t := range traces {
		phase := c.opts.PhaseOf(t.BatchID)
		a := acc[phase]
		if a == nil {
			a = &phaseAcc{batches: map[string]bool{}, served: map[string]int{}}
			acc[phase] = a
		}
		seen[t.BatchID] = true
		a.batches[t.BatchID] = true
		if t.Model != "" {
			sr.Attempts++
			a.attempts++
			if end, ok := ended[t.BatchID]; ok && t.Attempt > 1 {
				gap := float64(t.TsUs-end) / 1000
				sr.Retries++
				gapSum += gap
				sr.RetryGapMaxMs = max(sr.RetryGapMaxMs, gap)
			}
			ended[t.BatchID] = t.TsUs + t.LatencyUs
		}
		if t.Attempt == 1 && t.Model != "" {
			firstN++
			a.first = append(a.first, t.Verdict == schemas.VerdictPass)
			if t.Verdict == schemas.VerdictPass {
				firstPass++
			}
		}
		switch t.Outcome {
		case schemas.OutcomeNext:
			next[t.BatchID] = true
			a.served[t.Model]++
			a.passed++
		case schemas.OutcomeDLQ:
			dead[t.BatchID] = true
		}
		if t.Leader != "" {
			cl := leaders[t.Context]
			if cl == nil {
				cl = &ContextLeaders{Context: t.Context, InitialLeader: t.Leader, FinalLeader: t.Leader}
				leaders[t.Context] = cl
				order = append(order, t.Context)
			}
			cl.Decisions++
			if t.Leader != cl.FinalLeader {
				cl.Switches++
				sr.Switches = append(sr.Switches, Switch{Decision: i, BatchID: t.BatchID, Phase: phase, Context: t.Context,
					At: time.UnixMicro(t.TsUs).UTC(), From: cl.FinalLeader, To: t.Leader, Estimates: t.Estimates})
				cl.FinalLeader = t.Leader
			}
			if sr.InitialLeader == "" {
				sr.InitialLeader = t.Leader
			}
			sr.FinalLeader = t.Leader
			a.leader = leadersAt(leaders, order)
		}
	}
	if len(order) > 1 || (len(order) == 1 && order[0] != "") {
		slices.Sort(order)
		for _, k := range order {
			sr.Contexts = append(sr.Contexts, *leaders[k])
		}
	}
	if sr.Retries > 0 {
		sr.RetryGapMs = gapSum / float64(sr.Retries)
	}
	sr.BatchesIn, sr.Delivered, sr.DeadLettered = len(seen), len(next), len(dead)
	if sr.BatchesIn > 0 {
		sr.AttemptsPerBatch = float64(sr.Attempts) / float64(sr.BatchesIn)
	}
	if firstN > 0 {
		sr.FirstTryPassRate = float64(firstPass) / float64(firstN)
	}
	for _, name := range phases {
		a := acc[name]
		p := StepPhaseReport{Name: name, Batches: len(a.batches), Share: map[string]float64{}, Leader: a.leader}
		if p.Batches > 0 {
			p.AttemptsPerBatch = float64(a.attempts) / float64(p.Batches)
		}
		half := len(a.first) / 2
		p.FirstTryEarly, p.FirstTryLate = rate(a.first[:half]), rate(a.first[half:])
		for m, n := range a.served {
			p.Share[m] = float64(n) / float64(a.passed)
		}
		sr.Phases = append(sr.Phases, p)
	}
	return sr
}

// leadersAt is the leader now: the one model of a step without contexts,
// or "context: leader" per context, in the order they appeared.
func leadersAt(leaders map[string]*ContextLeaders, order []string) string {
	if len(order) == 1 && order[0] == "" {
		return leaders[""].FinalLeader
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, orDash(k)+": "+leaders[k].FinalLeader)
	}
	return strings.Join(parts, ", ")
}

func rate(vs []bool) float64 {
	if len(vs) == 0 {
		return 0
	}
	n := 0
	for _, v := range vs {
		if v {
			n++
		}
	}
	return float64(n) / float64(len(vs))
}

// WriteTable prints the report for people.
func (r Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\nworkflow %s: %d batches produced, %d delivered, %d dead-lettered, %d lost, %d duplicates in %.1fs (%.0f batches/s)\n",
		r.Workflow, r.Produced, r.Delivered, r.DeadLettered, r.Lost, r.Duplicates, r.WallSeconds, r.BatchesPerSecond)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nphase\tbatches\tdelivered\tdead-lettered\tdelivered %\taccuracy\tcost ms/delivered")
	for _, p := range r.Phases {
		acc := "-"
		if p.Accuracy != nil {
			acc = fmt.Sprintf("%.1f%%", 100**p.Accuracy)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%s\t%.2f\n", p.Name, p.Batches, p.Delivered, p.DeadLettered, 100*p.DeliveredFraction, acc, p.CostMsPerDelivered)
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t\t\t%.2f\n", r.Produced, r.Delivered, r.DeadLettered, r.CostMsPerDelivered)
	_ = tw.Flush() // output to the terminal, like the Fprintf calls
	for _, s := range r.Steps {
		fmt.Fprintf(w, "\nstep %s: %d batches in, %d passed on, %d dead-lettered, %.2f attempts/batch, first-try pass rate %.1f%%\n",
			s.Name, s.BatchesIn, s.Delivered, s.DeadLettered, s.AttemptsPerBatch, 100*s.FirstTryPassRate)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  phase\tbatches\tattempts/batch\tfirst-try pass early→late\tleader at end\tserved by")
		for _, p := range s.Phases {
			fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.0f%% → %.0f%%\t%s\t%s\n", p.Name, p.Batches, p.AttemptsPerBatch,
				100*p.FirstTryEarly, 100*p.FirstTryLate, p.Leader, shares(p.Share))
		}
		_ = tw.Flush() // output to the terminal, like the Fprintf calls
		if len(s.Contexts) == 0 {
			fmt.Fprintf(w, "  top-ranked model: %s at start", orDash(s.InitialLeader))
		} else {
			fmt.Fprintf(w, "  top-ranked model per upstream model (context: upstream):")
			for _, c := range s.Contexts {
				fmt.Fprintf(w, "\n    after %s: %s at start, %s at end (%d decisions, %d switches)", orDash(c.Context), c.InitialLeader, c.FinalLeader, c.Decisions, c.Switches)
			}
			fmt.Fprint(w, "\n  in all")
		}
		if len(s.Switches) == 0 {
			fmt.Fprintln(w, ", no switches")
		} else {
			fmt.Fprintf(w, ", %d switches:\n", len(s.Switches))
		}
		for _, sw := range s.Switches {
			after := ""
			if sw.Context != "" {
				after = ", after " + sw.Context
			}
			fmt.Fprintf(w, "    decision %d (batch %s, phase %s%s): %s → %s  [%s]\n", sw.Decision, sw.BatchID, sw.Phase, after, sw.From, sw.To, estimates(sw.Estimates))
		}
		if s.Retries > 0 {
			fmt.Fprintf(w, "  retries: %d, each starting %.1f ms (at most %.0f ms) after the failed attempt ended\n", s.Retries, s.RetryGapMs, s.RetryGapMaxMs)
		}
		for _, f := range r.Feedback {
			if f.Step == s.Name {
				fmt.Fprintf(w, "  downstream feedback: %d reports, each %.0f ms (at most %.0f ms) after the step passed its batch on\n", f.Reports, f.MeanDelayMs, f.MaxDelayMs)
			}
		}
	}
}

func shares(m map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var kvs []kv
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = fmt.Sprintf("%s %.0f%%", e.k, 100*e.v)
	}
	return strings.Join(parts, ", ")
}

func estimates(es []schemas.Estimate) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%s p=%.2f c=%.2fms c/p=%.2f", e.Model, e.PassProb, e.CostMs, e.Score)
	}
	return strings.Join(parts, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
