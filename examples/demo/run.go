package demo

import (
	"context"
	"fmt"
	"github.com/flexiflow/flexiflow/bandit"
	"io"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/sinks/summary"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// Options configure a demo run.
type Options struct {
	Batches   int // batches to produce (default 1200)
	BatchSize int // records per batch (default 32)
	Seed      uint64
	// Brokers to use; empty starts the embedded broker.
	Brokers []string
	// Kafka carries the TLS and SASL settings for Brokers (its own Brokers
	// and Log are ignored).
	Kafka stream.Config
	// Name renames the workflow (and so its topics and groups); empty keeps
	// "digits". Useful to run the demo again on a cluster that has the
	// topics of an earlier run.
	Name string
	// Progress receives a status line every ProgressEvery and a line per
	// model switch; nil prints nothing.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Timeout bounds the wait for every batch to finish (default 10m).
	Timeout time.Duration
	// Window is how many batches may be in flight (produced, not yet
	// delivered or dead-lettered) before the producer waits (default 16).
	// A small window makes the workflow meet the drift in order, as it would
	// a live stream; 0 keeps the default, a negative value disables it.
	Window int
	Log    *zap.Logger
	// Trap runs the trap workflow (digits-trap.yaml) instead of digits.yaml.
	Trap bool
	// Policy, when set, makes every step rank with this policy.
	Policy string
	// PolicyParams set parameters of every step's policy (name → number).
	PolicyParams map[string]string
}

func (o *Options) defaults() {
	if o.Batches == 0 {
		o.Batches = 1200
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Window == 0 {
		o.Window = 16
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run runs the demo end to end and returns its report.
func Run(ctx context.Context, o Options) (*summary.Report, error) {
	o.defaults()
	start := time.Now()
	file, text := WorkflowFile, workflowYAML
	if o.Trap {
		file, text = TrapWorkflowFile, trapYAML
	}
	if o.Name != "" {
		text = regexp.MustCompile(`(?m)^workflow: digits(-trap)?$`).ReplaceAll(text, []byte("workflow: "+o.Name))
	}
	wf, err := workflow.Parse(file, text)
	if err != nil {
		return nil, err
	}
	if o.Policy != "" {
		if err := wf.SetPolicy(o.Policy); err != nil {
			return nil, err
		}
	}
	if len(o.PolicyParams) > 0 {
		if err := wf.SetPolicyParams(o.PolicyParams); err != nil {
			return nil, err
		}
	}
	c, err := Compile(wf)
	if err != nil {
		return nil, err
	}
	steps := c.Steps
	kafka := o.Kafka
	kafka.Brokers, kafka.Log = o.Brokers, o.Log
	if len(o.Brokers) == 0 {
		b, err := stream.StartEmbedded("127.0.0.1:0", wf.Partitions)
		if err != nil {
			return nil, err
		}
		defer b.Close()
		kafka.Brokers = b.Addrs()
		fmt.Fprintf(o.Progress, "embedded Kafka broker on %s\n", kafka.Brokers[0])
	} else if err := stream.Ping(ctx, kafka); err != nil {
		return nil, err
	}
	prod, err := NewProducer(c.Digits, wf, c.Schemas, o.BatchSize, o.Seed)
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pipe, err := pipeline.Start(runCtx, steps, kafka, pipeline.CreateTopics(0), pipeline.WithLogger(o.Log))
	if err != nil {
		return nil, err
	}
	defer pipe.Stop()
	col, err := summary.NewCollector(Summary(wf), kafka, summary.Options{
		PhaseOf: PhaseOf(o.Batches), Quality: Accuracy, Out: steps[len(steps)-1].Out, Log: o.Log,
	})
	if err != nil {
		return nil, err
	}
	var colWG sync.WaitGroup
	colWG.Add(1)
	go func() { defer colWG.Done(); _ = col.Run(runCtx) }()
	defer colWG.Wait()
	defer cancel()

	fmt.Fprintf(o.Progress, "workflow %s: %s; %d batches of %d digit images, drifting through phases %s\n",
		wf.Name, describeSteps(steps), o.Batches, o.BatchSize, strings.Join(PhaseNames(o.Batches), " → "))

	var produced []string
	var prodErr error
	prodDone := make(chan struct{})
	var producedN int64
	var mu sync.Mutex
	go func() {
		defer close(prodDone)
		produced, prodErr = prod.Produce(runCtx, kafka, o.Batches, func(i int) {
			for o.Window > 0 && runCtx.Err() == nil {
				d, dl := col.Finished()
				if i-(d+dl) < o.Window {
					break
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			producedN = int64(i)
			mu.Unlock()
		})
	}()

	watch := newWatcher(o.Progress, start, pipe)
	deadline := time.After(o.Timeout)
	tick := time.NewTicker(o.ProgressEvery)
	defer tick.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("demo interrupted: %w", ctx.Err())
		case <-deadline:
			d, dl := col.Finished()
			return nil, fmt.Errorf("demo timed out after %s with %d of %d batches finished (%d delivered, %d dead-lettered); stages: %s",
				o.Timeout, d+dl, o.Batches, d, dl, watch.line())
		case <-tick.C:
			mu.Lock()
			n := producedN
			mu.Unlock()
			d, dl := col.Finished()
			watch.status(n, int64(o.Batches), d, dl)
		case <-poll.C:
			watch.switches()
			if err := pipe.Err(); err != nil {
				return nil, fmt.Errorf("a stage failed: %w", err)
			}
			select {
			case <-prodDone:
				if prodErr != nil {
					return nil, prodErr
				}
				if d, dl := col.Finished(); d+dl >= o.Batches {
					wall := time.Since(start)
					awaitFeedback(ctx, pipe, steps[len(steps)-1].Spec.Name, 10*time.Second)
					cancel()
					colWG.Wait()
					if err := pipe.Stop(); err != nil {
						return nil, err
					}
					r := col.Report(produced, PhaseNames(o.Batches), wall)
					for _, f := range feedbackByStep(pipe, steps[len(steps)-1].Spec.Name) {
						if f.Reports > 0 {
							r.Feedback = append(r.Feedback, f.FeedbackReport)
						}
					}
					for _, st := range wf.Steps {
						params, err := bandit.Resolve(st.Policy.Name, st.Policy.Params)
						if err != nil {
							return nil, err
						}
						r.OverheadMs = append(r.OverheadMs, params["overhead_ms"])
					}
					return &r, nil
				}
			default:
			}
		}
	}
}

// awaitFeedback waits (at most d, or until ctx ends) until every step but
// the last has read a downstream report for each batch it passed on: the
// reports of the last batches are still on their way when the batches
// themselves have ended.
func awaitFeedback(ctx context.Context, pipe *pipeline.Pipeline, last string, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := false
		for _, f := range feedbackByStep(pipe, last) {
			behind = behind || f.Reports < f.passedOn
		}
		if !behind {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stepFeedback is what a step's consumers, together, heard back.
type stepFeedback struct {
	summary.FeedbackReport
	passedOn int64
}

// feedbackByStep adds up the counters of each step's consumers, in
// workflow order, for every step but the last.
func feedbackByStep(pipe *pipeline.Pipeline, last string) []stepFeedback {
	var out []stepFeedback
	at := map[string]int{}
	for _, s := range pipe.Snapshots() {
		if s.Step == last {
			continue
		}
		i, ok := at[s.Step]
		if !ok {
			i = len(out)
			at[s.Step] = i
			out = append(out, stepFeedback{FeedbackReport: summary.FeedbackReport{Step: s.Step}})
		}
		f := &out[i]
		f.MeanDelayMs = (f.MeanDelayMs*float64(f.Reports) + s.FeedbackDelayMeanMs*float64(s.Feedback)) / math.Max(1, float64(f.Reports+s.Feedback))
		f.Reports += s.Feedback
		f.MaxDelayMs = math.Max(f.MaxDelayMs, s.FeedbackDelayMaxMs)
		f.passedOn += s.Next
	}
	return out
}

func describeSteps(steps []*stages.Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%s [%s]", s.Spec.Name, strings.Join(s.ModelNames(), ", "))
	}
	return strings.Join(parts, " → ")
}

// watcher prints progress lines and leader switches.
type watcher struct {
	w       io.Writer
	start   time.Time
	pipe    *pipeline.Pipeline
	leaders map[string]string
}

func newWatcher(w io.Writer, start time.Time, pipe *pipeline.Pipeline) *watcher {
	return &watcher{w: w, start: start, pipe: pipe, leaders: map[string]string{}}
}

func (w *watcher) elapsed() string { return fmt.Sprintf("[%5.1fs]", time.Since(w.start).Seconds()) }

func (w *watcher) switches() {
	for _, s := range w.pipe.Snapshots() {
		prev, seen := w.leaders[s.Step]
		if s.Leader == "" || s.Leader == prev {
			continue
		}
		if seen && prev != "" {
			fmt.Fprintf(w.w, "%s %s: top-ranked model %s → %s\n", w.elapsed(), s.Step, prev, s.Leader)
		} else {
			fmt.Fprintf(w.w, "%s %s: top-ranked model is %s\n", w.elapsed(), s.Step, s.Leader)
		}
		w.leaders[s.Step] = s.Leader
	}
}

func (w *watcher) line() string {
	var parts []string
	for _, s := range w.pipe.Snapshots() {
		parts = append(parts, fmt.Sprintf("%s %d in → %d next, %d retry, %d dlq (leader %s)", s.Step, s.Batches, s.Next, s.Retry, s.DLQ, s.Leader))
	}
	return strings.Join(parts, " | ")
}

func (w *watcher) status(produced, total int64, delivered, dead int) {
	fmt.Fprintf(w.w, "%s produced %d/%d · %s · finished %d (%d delivered, %d dead-lettered)\n",
		w.elapsed(), produced, total, w.line(), delivered+dead, delivered, dead)
}
