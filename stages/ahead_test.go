package stages

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recorder is a process function that copies each record's value into one
// output record and remembers what it saw.
type recorder struct {
	mu        sync.Mutex
	processed []string
	running   atomic.Int32
	maxRun    atomic.Int32
	gate      map[string]chan struct{} // process of that value waits for it
	discarded []string
}

func (rc *recorder) process(ctx context.Context, r *kgo.Record) ([]*kgo.Record, route, error) {
	n := rc.running.Add(1)
	defer rc.running.Add(-1)
	for {
		m := rc.maxRun.Load()
		if n <= m || rc.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	if g := rc.gate[string(r.Value)]; g != nil {
		<-g
	}
	time.Sleep(100 * time.Microsecond) // long enough for others to overlap, if they may
	rc.mu.Lock()
	rc.processed = append(rc.processed, string(r.Value))
	rc.mu.Unlock()
	return []*kgo.Record{{Value: append([]byte("out-"), r.Value...)}}, route{outcome: "next"}, ctx.Err()
}

func (rc *recorder) discard(out []*kgo.Record) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, o := range out {
		rc.discarded = append(rc.discarded, string(o.Value))
	}
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.processed)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startAhead returns an ahead over rc with its workers started.
func startAhead(ctx context.Context, workers, window int, rc *recorder) *ahead {
	a := newAhead(ctx, window, rc.process, rc.discard)
	a.start(workers)
	return a
}

func records(n int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}
	}
	return rs
}

func TestAheadReturnsEachResultInTakeOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			rc := &recorder{}
			a := startAhead(context.Background(), workers, 8, rc)
			defer a.close()
			rs := records(100)
			for _, r := range rs {
				a.OnFetchRecordBuffered(r)
			}
			for _, r := range rs {
				out, rt, err := a.take(r)
				a.OnFetchRecordUnbuffered(r, true) // the poll's own unbuffering changes nothing
				if err != nil || len(out) != 1 || string(out[0].Value) != "out-"+string(r.Value) || rt.outcome != "next" {
					t.Fatalf("take(%s) = %v, %+v, %v", r.Value, out, rt, err)
				}
			}
			if got := rc.count(); got != len(rs) {
				t.Errorf("processed %d records for %d taken", got, len(rs))
			}
			if m := rc.maxRun.Load(); m > int32(workers) {
				t.Errorf("%d process calls ran at once with %d workers", m, workers)
			}
		})
	}
}

func TestAheadStaysWithinItsWindow(t *testing.T) {
	rc := &recorder{}
	const window = 3
	a := startAhead(context.Background(), 2, window, rc)
	defer a.close()
	rs := records(10)
	for _, r := range rs {
		a.OnFetchRecordBuffered(r)
	}
	waitFor(t, "the window to fill", func() bool { return rc.count() == window })
	time.Sleep(20 * time.Millisecond) // room to overrun the window, if it could
	if got := rc.count(); got != window {
		t.Fatalf("processed %d records ahead with a window of %d", got, window)
	}
	if _, _, err := a.take(rs[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one more record after a take", func() bool { return rc.count() == window+1 })
	time.Sleep(20 * time.Millisecond)
	if got := rc.count(); got != window+1 {
		t.Fatalf("processed %d records after one take with a window of %d", got, window)
	}
}

// A record taken before a worker reached it goes first, whatever the window
// and whether or not the client's hook saw it, and still on a worker.
func TestAheadTakesUrgentRecordsPastTheWindow(t *testing.T) {
	rc := &recorder{gate: map[string]chan struct{}{"r0": make(chan struct{})}}
	a := startAhead(context.Background(), 2, 1, rc)
	defer a.close()
	rs := records(3)
	for _, r := range rs[:2] {
		a.OnFetchRecordBuffered(r)
	}
	// r0 holds the window; r1 waits behind it; r2 was never buffered.
	waitFor(t, "r0 to start", func() bool { return rc.running.Load() == 1 })
	for _, r := range []*kgo.Record{rs[2], rs[1]} {
		out, _, err := a.take(r)
		if err != nil || string(out[0].Value) != "out-"+string(r.Value) {
			t.Fatalf("take(%s) = %v, %v", r.Value, out, err)
		}
	}
	close(rc.gate["r0"])
	if out, _, err := a.take(rs[0]); err != nil || string(out[0].Value) != "out-r0" {
		t.Fatalf("take(r0) = %v, %v", out, err)
	}
	if m := rc.maxRun.Load(); m > 2 {
		t.Errorf("%d process calls ran at once with 2 workers", m)
	}
}

// A record the client drops unpolled (revoked partition, rewound offsets)
// is not processed if no worker started it, and its outputs are handed to
// discard if one did.
func TestAheadDropsUnpolledRecords(t *testing.T) {
	rc := &recorder{gate: map[string]chan struct{}{"r0": make(chan struct{})}}
	a := startAhead(context.Background(), 1, 10, rc)
	defer a.close()
	rs := records(3)
	for _, r := range rs {
		a.OnFetchRecordBuffered(r)
	}
	waitFor(t, "r0 to start", func() bool { return rc.running.Load() == 1 })
	a.OnFetchRecordUnbuffered(rs[0], false) // running
	a.OnFetchRecordUnbuffered(rs[1], false) // queued
	close(rc.gate["r0"])
	if out, _, err := a.take(rs[2]); err != nil || string(out[0].Value) != "out-r2" {
		t.Fatalf("take(r2) = %v, %v", out, err)
	}
	waitFor(t, "r0's outputs to be discarded", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.discarded) == 1
	})
	a.close() // lets the worker finish anything it would still start
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if fmt.Sprint(rc.processed) != "[r0 r2]" || fmt.Sprint(rc.discarded) != "[out-r0]" {
		t.Errorf("processed %v, discarded %v; want [r0 r2] and [out-r0]", rc.processed, rc.discarded)
	}
}

// Shutdown: take reports the cancelled context process saw, and close
// returns with records still queued.
func TestAheadStopsOnCancel(t *testing.T) {
	rc := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	a := startAhead(ctx, 1, 2, rc)
	rs := records(10)
	for _, r := range rs {
		a.OnFetchRecordBuffered(r)
	}
	cancel()
	if _, _, err := a.take(rs[5]); err == nil {
		t.Error("take after cancel returned no error")
	}
	done := make(chan struct{})
	go func() { a.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return with records still queued")
	}
	if got := rc.count(); got > 3 {
		t.Errorf("processed %d records with a window of 2 and one take", got)
	}
}

// Nothing is processed before start: a stage restores what its policy
// learned first.
func TestAheadWaitsForStart(t *testing.T) {
	rc := &recorder{}
	a := newAhead(context.Background(), 4, rc.process, rc.discard)
	defer a.close()
	rs := records(3)
	for _, r := range rs {
		a.OnFetchRecordBuffered(r)
	}
	time.Sleep(20 * time.Millisecond) // room to start early, if it could
	if got := rc.count(); got != 0 {
		t.Fatalf("processed %d records before start", got)
	}
	a.start(1)
	waitFor(t, "the buffered records after start", func() bool { return rc.count() == len(rs) })
}
