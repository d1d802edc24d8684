package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WindowHelp describes the window syntax, for flags' help.
const WindowHelp = `A window is FROM/TO, half-open [FROM, TO) on the attempts' start times:
  2026-11-23T10:00:00Z/2026-11-23T11:00:00Z   absolute RFC 3339 times
  -2h/-1h, -30m/now, -1d/now                   relative to now (units ns..h, and d)
  2026-11-23T10:00:00Z/now                     mixed
or batches:A-B, the step's batches A to B-1 in arrival order (0-based;
batches:800- runs to the last one): handy when a run took seconds, as the
demo's do.`

// Window is a parsed --reference/--recent/--since value.
type Window struct {
	Text string
	// Time windows.
	From, To time.Time
	// Batch windows (Batches true): ordinals [FromBatch, ToBatch); ToBatch
	// -1 means "to the last batch".
	Batches            bool
	FromBatch, ToBatch int64
}

// ParseWindow parses a window relative to now.
func ParseWindow(s string, now time.Time) (Window, error) {
	w := Window{Text: s}
	if rest, ok := strings.CutPrefix(s, "batches:"); ok {
		a, b, ok := strings.Cut(rest, "-")
		from, err := strconv.ParseInt(a, 10, 64)
		if !ok || err != nil || from < 0 {
			return w, fmt.Errorf("window %q: batch windows look like batches:0-400 (batches 0 to 399) or batches:800- (800 to the last)", s)
		}
		to := int64(-1)
		if b != "" {
			if to, err = strconv.ParseInt(b, 10, 64); err != nil || to <= from {
				return w, fmt.Errorf("window %q: the end %q must be a batch number greater than the start %d", s, b, from)
			}
		}
		w.Batches, w.FromBatch, w.ToBatch = true, from, to
		return w, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return w, fmt.Errorf("window %q: give FROM/TO, e.g. -2h/-1h, 2026-11-23T10:00:00Z/2026-11-23T11:00:00Z or batches:0-400", s)
	}
	var err error
	if w.From, err = ParseInstant(a, now); err != nil {
		return w, fmt.Errorf("window %q: start: %w", s, err)
	}
	if w.To, err = ParseInstant(b, now); err != nil {
		return w, fmt.Errorf("window %q: end: %w", s, err)
	}
	if !w.To.After(w.From) {
		return w, fmt.Errorf("window %q: the end %s is not after the start %s", s, w.To.Format(time.RFC3339), w.From.Format(time.RFC3339))
	}
	return w, nil
}

// ParseInstant parses an RFC 3339 time, "now", or a negative duration
// relative to now (-90m, -2h, -1d).
func ParseInstant(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "now":
		return now.UTC(), nil
	case strings.HasPrefix(s, "-"):
		d, err := parseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a duration like -2h, -30m or -1d", s)
		}
		return now.Add(-d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-23T10:00:00Z), now, nor a relative time (-2h)", s)
	}
	return t.UTC(), nil
}

func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// ordinals are the batch ordinals the windows' ends name.
func ordinals(ws ...Window) []int64 {
	var out []int64
	for _, w := range ws {
		if w.Batches {
			out = append(out, w.FromBatch)
			if w.ToBatch >= 0 {
				out = append(out, w.ToBatch)
			}
		}
	}
	return out
}

// resolve turns the window into a time range [from, to), batch windows
// through starts, the start times of the step's batches by ordinal
// (batchStarts).
func (w Window) resolve(starts map[int64]time.Time, workflow, step string) (from, to time.Time, err error) {
	if !w.Batches {
		return w.From, w.To, nil
	}
	from, ok := starts[w.FromBatch]
	if !ok {
		return from, to, fmt.Errorf("window %s: step %s of workflow %s has seen %d batches or fewer; choose a smaller start", w.Text, step, workflow, w.FromBatch)
	}
	to = maxTime
	if t, ok := starts[w.ToBatch]; ok && w.ToBatch >= 0 {
		to = t
	}
	return from, to, nil
}

// batchStarts asks the engine, in one query, when the step's batches with
// ordinals ns started; ordinals the step has not reached are absent.
func batchStarts(ctx context.Context, e Engine, workflow, step string, ns []int64) (map[int64]time.Time, error) {
	starts := map[int64]time.Time{}
	if len(ns) == 0 {
		return starts, nil
	}
	list := make([]string, len(ns))
	for i, n := range ns {
		list[i] = strconv.FormatInt(n, 10)
	}
	res, err := Run(ctx, e, QueryBatchWindow, map[string]string{"workflow": workflow, "step": step, "n": "[" + strings.Join(list, ",") + "]"})
	if err != nil {
		return nil, fmt.Errorf("finding batches %s of step %s: %w", strings.Join(list, ", "), step, err)
	}
	for i := range res.Rows {
		n, err := strconv.ParseInt(res.String(i, "n"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("finding batches of step %s: unexpected ordinal %q", step, res.String(i, "n"))
		}
		starts[n] = res.Time(i, "started")
	}
	return starts, nil
}
