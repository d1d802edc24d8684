package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
)

// ErrNotFound reports a workflow, step or batch with no traces.
var ErrNotFound = errors.New("not found in the traces")

// notFound is an ErrNotFound with its own message.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == ErrNotFound }

func notFoundf(format string, args ...any) error { return notFound(fmt.Sprintf(format, args...)) }

// Run runs a shipped query by name with its parameters.
func Run(ctx context.Context, e Engine, name string, params map[string]string) (*Result, error) {
	sql, err := QuerySQL(name)
	if err != nil {
		return nil, err
	}
	res, err := e.Query(ctx, sql, params)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", name, err)
	}
	return res, nil
}

// CheckNames fails with ErrNotFound, listing what exists, when the traces
// hold nothing for workflow (or for its step, when step is not empty). It
// reads only the workflow's steps; every workflow is listed only when the
// name is unknown.
func CheckNames(ctx context.Context, e Engine, workflow, step string) error {
	var res *Result
	if workflow != "" {
		var err error
		if res, err = Run(ctx, e, QuerySteps, map[string]string{"workflow": workflow}); err != nil {
			return err
		}
	}
	if res == nil || len(res.Rows) == 0 {
		all, err := Run(ctx, e, QuerySteps, map[string]string{"workflow": ""})
		if err != nil {
			return err
		}
		var names []string
		for i := range all.Rows {
			names = append(names, all.String(i, "workflow"))
		}
		sort.Strings(names)
		names = slices.Compact(names)
		have := "none yet: is the sink running (flexiflow sink)?"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return notFoundf("no traces of workflow %q in ClickHouse; workflows with traces: %s", workflow, have)
	}
	if step == "" {
		return nil
	}
	steps := make([]string, len(res.Rows))
	for i := range res.Rows {
		if steps[i] = res.String(i, "step"); steps[i] == step {
			return nil
		}
	}
	return notFoundf("workflow %q has no step %q in its traces; its steps: %s", workflow, step, strings.Join(steps, ", "))
}

// DriftParams are the drift query's inputs.
type DriftParams struct {
	Workflow, Step    string
	Reference, Recent Window
	Threshold         float64 // PSI above it is flagged (0.2 is the usual "significant shift")
}

// DriftQuery resolves the windows (the batch ordinals they name in one
// query) and runs the drift query.
func DriftQuery(ctx context.Context, e Engine, p DriftParams) (*Result, error) {
	starts, err := batchStarts(ctx, e, p.Workflow, p.Step, ordinals(p.Reference, p.Recent))
	if err != nil {
		return nil, err
	}
	rf, rt, err := p.Reference.resolve(starts, p.Workflow, p.Step)
	if err != nil {
		return nil, fmt.Errorf("--reference: %w", err)
	}
	qf, qt, err := p.Recent.resolve(starts, p.Workflow, p.Step)
	if err != nil {
		return nil, fmt.Errorf("--recent: %w", err)
	}
	res, err := Run(ctx, e, QueryDrift, DriftQueryParams(p.Workflow, p.Step, rf, rt, qf, qt, p.Threshold))
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, notFoundf("no input feature of step %s has batches in both windows (reference %s = [%s, %s), recent %s = [%s, %s)); widen the windows, or see when the step ran with flexiflow switches",
			p.Step, p.Reference.Text, timeParam(rf), timeParam(rt), p.Recent.Text, timeParam(qf), timeParam(qt))
	}
	return res, nil
}

// DriftQueryParams are the drift query's parameters for resolved windows.
func DriftQueryParams(workflow, step string, refFrom, refTo, recentFrom, recentTo time.Time, threshold float64) map[string]string {
	return map[string]string{
		"workflow": workflow, "step": step,
		"ref_from": timeParam(refFrom), "ref_to": timeParam(refTo),
		"recent_from": timeParam(recentFrom), "recent_to": timeParam(recentTo),
		"threshold": strconv.FormatFloat(threshold, 'g', -1, 64),
	}
}

// SwitchesQuery runs the switches query; step "" means every step, a zero
// since means from the beginning.
func SwitchesQuery(ctx context.Context, e Engine, workflow, step string, since time.Time) (*Result, error) {
	if since.IsZero() {
		since = minTime
	}
	return Run(ctx, e, QuerySwitches, map[string]string{"workflow": workflow, "step": step, "since": timeParam(since)})
}

// TraceQuery runs the trace query for one batch.
func TraceQuery(ctx context.Context, e Engine, workflow, batchID string) (*Result, error) {
	res, err := Run(ctx, e, QueryTrace, map[string]string{"workflow": workflow, "batch_id": batchID})
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, notFoundf("no attempts of batch %q in workflow %s (batch ids are the flexiflow-batch-id header, e.g. b000042 in the demo)", batchID, workflow)
	}
	return res, nil
}

// ProfileTraces reads the attempts of workflow since a time (zero: from the
// beginning) as traces holding what a plan profiles: batch, step, model,
// attempt, time, latency, records and verdict.
func ProfileTraces(ctx context.Context, e Engine, workflow string, since time.Time) ([]*schemas.Trace, error) {
	if since.IsZero() {
		since = minTime
	}
	res, err := Run(ctx, e, QueryProfile, map[string]string{"workflow": workflow, "since": timeParam(since)})
	if err != nil {
		return nil, err
	}
	out := make([]*schemas.Trace, len(res.Rows))
	for i := range res.Rows {
		out[i] = &schemas.Trace{Workflow: workflow, BatchID: res.String(i, "batch_id"), Step: res.String(i, "step"),
			Model: res.String(i, "model"), Attempt: int(res.Float(i, "attempt")), TsUs: int64(res.Float(i, "ts_us")),
			LatencyUs: int64(res.Float(i, "latency_us")), Records: int(res.Float(i, "records")), Verdict: res.String(i, "verdict")}
	}
	return out, nil
}
