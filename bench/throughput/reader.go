package throughput

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/stream"
)

// reader counts batches arriving on a variant's final topics (its output
// and, for stages, its dead-letter topic; read_committed) and records the
// latency of the tracked ones.
type reader struct {
	cl     *kgo.Client
	mu     sync.Mutex
	seen   int
	first  int         // index of the first tracked batch
	sent   []time.Time // send time of tracked batches
	lat    []float64   // ms
	done   chan struct{}
	stop   context.CancelFunc
	topics []string
}

func newReader(k stream.Config, topics ...string) (*reader, error) {
	cl, err := kgo.NewClient(append(k.ClientOpts(), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A short fetch wait: the reader measures latency and must not sit
		// on a fetch that a commit marker does not wake.
		kgo.FetchMaxWait(20*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{cl: cl, done: make(chan struct{}), stop: cancel, topics: topics, first: -1}
	go r.loop(ctx)
	return r, nil
}

func (r *reader) loop(ctx context.Context) {
	defer close(r.done)
	for {
		f := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || f.IsClientClosed() {
			return
		}
		now := time.Now()
		r.mu.Lock()
		f.EachRecord(func(rec *kgo.Record) {
			r.seen++
			if r.first < 0 {
				return
			}
			i, err := strconv.Atoi(strings.TrimPrefix(string(rec.Key), "b"))
			if err == nil && i >= r.first && i-r.first < len(r.sent) && !r.sent[i-r.first].IsZero() {
				r.lat = append(r.lat, float64(now.Sub(r.sent[i-r.first]).Microseconds())/1000)
			}
		})
		r.mu.Unlock()
	}
}

// track starts recording latencies for batches first.. using sent times.
func (r *reader) track(first int, sent []time.Time) {
	r.mu.Lock()
	r.first, r.sent = first, sent
	r.mu.Unlock()
}

func (r *reader) latencies() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float64(nil), r.lat...)
}

// count is how many batches arrived so far.
func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// waitFor waits until n batches arrived.
func (r *reader) waitFor(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		seen := r.seen
		r.mu.Unlock()
		if seen >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("only %d of %d batches reached %s within %s", r.seen, n, strings.Join(r.topics, " or "), timeout)
}

func (r *reader) close() {
	r.stop()
	r.cl.Close()
	<-r.done
}
