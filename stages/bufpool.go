package stages

import "sync"

// bufPool keeps the buffers batches are encoded into, for reuse once Kafka
// has acknowledged their records. Unlike a sync.Pool it survives garbage
// collections: a stage's buffers are large (a whole batch each) and a
// collection every few transactions would otherwise hand most batches a
// freshly allocated and zeroed buffer. It holds at most max bytes.
type bufPool struct {
	mu    sync.Mutex
	free  [][]byte
	bytes int
	max   int
}

// get returns an empty buffer of capacity at least want, the most recently
// returned one that fits (its memory is likeliest still in cache).
func (p *bufPool) get(want int) []byte {
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if b := p.free[i]; cap(b) >= want {
			p.free = append(p.free[:i], p.free[i+1:]...)
			p.bytes -= cap(b)
			p.mu.Unlock()
			return b[:0]
		}
	}
	if n := len(p.free); n > 0 {
		// Nothing fits: batches grew. Let the oldest buffer go, so the pool
		// comes to hold buffers of the size batches have now.
		p.bytes -= cap(p.free[0])
		p.free = append(p.free[:0], p.free[1:]...)
	}
	p.mu.Unlock()
	return make([]byte, 0, want)
}

// put gives a buffer back, unless the pool is full.
func (p *bufPool) put(b []byte) {
	p.mu.Lock()
	if p.bytes+cap(b) <= p.max {
		p.free = append(p.free, b[:0])
		p.bytes += cap(b)
	}
	p.mu.Unlock()
}
