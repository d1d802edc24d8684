package stream

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Quiet returns l with repeated warnings and errors rate-limited: the first
// of each message is written, the same message again within every is
// counted instead, and the next one written after that carries the count
// ("repeated": N, "since": when the first of them was). A broker that is
// down makes the client and the stages say the same thing many times a
// second; this keeps the log readable without hiding that it goes on.
// Messages below warning level pass unchanged.
func Quiet(l *zap.Logger, every time.Duration) *zap.Logger {
	st := &quietState{seen: map[string]*repeat{}}
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return &quietCore{Core: c, every: every, st: st} }))
}

type quietState struct {
	mu   sync.Mutex
	seen map[string]*repeat // by logger name and message
}

type repeat struct {
	written    time.Time
	suppressed int
	since      time.Time
}

type quietCore struct {
	zapcore.Core
	every time.Duration
	st    *quietState
}

func (c *quietCore) With(f []zapcore.Field) zapcore.Core {
	return &quietCore{Core: c.Core.With(f), every: c.every, st: c.st}
}

func (c *quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Level < zapcore.WarnLevel {
		return c.Core.Check(e, ce)
	}
	if !c.Enabled(e.Level) {
		return ce
	}
	return ce.AddCore(e, c)
}

func (c *quietCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	key := e.LoggerName + "\x00" + e.Message
	c.st.mu.Lock()
	r := c.st.seen[key]
	if r != nil && e.Time.Sub(r.written) < c.every {
		if r.suppressed == 0 {
			r.since = e.Time
		}
		r.suppressed++
		c.st.mu.Unlock()
		return nil
	}
	if r == nil {
		r = &repeat{}
		c.st.seen[key] = r
	}
	n, since := r.suppressed, r.since
	r.written, r.suppressed = e.Time, 0
	c.st.mu.Unlock()
	if n > 0 {
		f = append(f[:len(f):len(f)], zap.Int("repeated", n), zap.Time("since", since))
	}
	return c.Core.Write(e, f)
}
