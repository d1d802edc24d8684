package stream

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a jittered exponential backoff: each Next waits about twice as
// long as the last, up to max, with up to a quarter of it random so that
// many clients retrying together spread out.
type Backoff struct {
	first, max, cur time.Duration
}

// NewBackoff returns a backoff starting at first and capped at max.
func NewBackoff(first, max time.Duration) *Backoff { return &Backoff{first: first, max: max} }

// Next returns how long to wait before the next try.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = min(b.first, b.max)
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur - time.Duration(rand.Int64N(int64(b.cur)/4+1))
}

// Sleep waits d, or until ctx ends: then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reset starts the backoff again from first.
func (b *Backoff) Reset() { b.cur = 0 }
