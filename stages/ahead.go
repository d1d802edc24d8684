package stages

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ahead sends batches down the data path as soon as the Kafka client has
// fetched them, before the poll that hands them to a transaction, so that
// one transaction's flush and commit (waits on the broker) overlap the next
// batches' decoding, models and encoding.
//
// The client calls it from its fetch goroutine for every record it buffers
// (kgo.HookFetchRecordBuffered) and for every record it drops unpolled, say
// when a rebalance revokes the partition (kgo.HookFetchRecordUnbuffered). A
// pool of workers goroutines works through the buffered records in fetch
// order, at most window of them started and not yet taken; a transaction
// takes each polled record's result with take, in poll order, and produces
// it. Nothing is produced ahead: a record's output and trace join the
// transaction that commits its offset, exactly as when it is processed at
// poll time.
//
// Every process call runs on a worker, so at most workers of them run at
// once, as WithWorkers promises. The window bounds both the memory held by
// finished results and how stale a ranking can be: a batch is ranked with
// what the policy learned up to at most window batches before it. A record
// dropped after it was processed is not produced, and the policy learns
// nothing from it: it learns only from committed transactions (transact).
type ahead struct {
	process func(context.Context, *kgo.Record) ([]*kgo.Record, route, error)
	discard func([]*kgo.Record) // a dropped record's outputs
	ctx     context.Context
	window  int

	mu      sync.Mutex
	cond    sync.Cond
	queue   []*pending // buffered and not started, oldest first (taken ones are skipped)
	urgent  []*pending // taken before a worker started them: next, whatever the window
	byRec   map[*kgo.Record]*pending
	started int // started and not yet taken or dropped
	idle    int // workers waiting on cond
	closed  bool
	wg      sync.WaitGroup
}

// pending is one record on its way down the data path.
type pending struct {
	r     *kgo.Record
	state pendingState
	taken bool // taken or dropped: no longer in byRec
	done  chan struct{}
	out   []*kgo.Record
	rt    route
	err   error
}

type pendingState uint8

const (
	queued pendingState = iota
	running
	finished
)

// newAhead returns an ahead whose workers will call process under ctx;
// records buffered before start wait for it. discard receives the outputs
// of records dropped after they were processed.
func newAhead(ctx context.Context, window int,
	process func(context.Context, *kgo.Record) ([]*kgo.Record, route, error), discard func([]*kgo.Record),
) *ahead {
	a := &ahead{process: process, discard: discard, ctx: ctx, window: max(window, 1), byRec: make(map[*kgo.Record]*pending)}
	a.cond.L = &a.mu
	return a
}

// start starts workers goroutines (at least one); stop them with close.
// A stage starts them once it has restored what its policy learned, so that
// no batch is ranked before that.
func (a *ahead) start(workers int) {
	for range max(workers, 1) {
		a.wg.Add(1)
		go a.work()
	}
}

// OnFetchRecordBuffered implements kgo.HookFetchRecordBuffered. It must not
// block: the client cannot hand out the fetch until its hooks return.
func (a *ahead) OnFetchRecordBuffered(r *kgo.Record) {
	p := &pending{r: r, done: make(chan struct{})}
	a.mu.Lock()
	a.byRec[r] = p
	a.queue = append(a.queue, p)
	wake := a.idle > 0 && a.started < a.window
	a.mu.Unlock()
	if wake {
		a.cond.Signal()
	}
}

// OnFetchRecordUnbuffered implements kgo.HookFetchRecordUnbuffered: a record
// dropped unpolled (its partition was revoked or lost, or an aborted
// transaction rewound the offsets) is forgotten, and whatever was computed
// for it is thrown away; whoever consumes it next processes it again.
func (a *ahead) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled {
		return
	}
	a.mu.Lock()
	p := a.byRec[r]
	if p == nil {
		a.mu.Unlock()
		return
	}
	delete(a.byRec, r)
	p.taken = true // a worker that has not started it skips it
	state := p.state
	wake := false
	if state != queued { // its room in the window is free
		a.started--
		wake = a.idle > 0 && len(a.queue) > 0
	}
	a.mu.Unlock()
	if wake {
		a.cond.Signal()
	}
	if state != queued {
		go func() { // the result, once there, is not needed
			<-p.done
			a.discard(p.out)
		}()
	}
}

// work processes records until close.
func (a *ahead) work() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		p := a.next()
		for p == nil && !a.closed {
			a.idle++
			a.cond.Wait()
			a.idle--
			p = a.next()
		}
		if p == nil {
			a.mu.Unlock()
			return
		}
		p.state = running
		a.started++
		a.mu.Unlock()
		p.out, p.rt, p.err = a.process(a.ctx, p.r)
		a.mu.Lock()
		p.state = finished
		a.mu.Unlock()
		close(p.done)
	}
}

// next pops the record a worker should start, or nil; a.mu is held.
// Records a transaction waits for come first; records nobody asked for yet
// only while fewer than window are started and not taken.
func (a *ahead) next() *pending {
	for len(a.urgent) > 0 {
		p := a.urgent[0]
		a.urgent[0] = nil
		a.urgent = a.urgent[1:]
		if p.state == queued {
			return p
		}
	}
	if a.started >= a.window {
		return nil
	}
	for len(a.queue) > 0 {
		p := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		if p.state == queued && !p.taken {
			return p
		}
	}
	return nil
}

// take returns what processing r produced, waiting for it, and putting r
// first in line when no worker has started it yet (a record the hooks never
// saw goes first in line too). Once ctx ends, process returns promptly with
// an error, and so does take.
func (a *ahead) take(r *kgo.Record) ([]*kgo.Record, route, error) {
	a.mu.Lock()
	p := a.byRec[r]
	if p == nil {
		p = &pending{r: r, done: make(chan struct{})}
	}
	delete(a.byRec, r)
	p.taken = true
	if p.state != finished { // wait for it, first in line if not started
		wake := false
		if p.state == queued {
			a.urgent = append(a.urgent, p)
			wake = a.idle > 0
		}
		a.mu.Unlock()
		if wake {
			a.cond.Signal()
		}
		<-p.done
		a.mu.Lock()
	}
	// p's results were written before its state became finished, under a.mu.
	a.started--
	wake := a.idle > 0 && len(a.queue) > 0 // room for one more ahead
	a.mu.Unlock()
	if wake {
		a.cond.Signal()
	}
	return p.out, p.rt, p.err
}

// close stops the workers once they finish what they started; results no
// transaction took are dropped.
func (a *ahead) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cond.Broadcast()
	a.wg.Wait()
}
