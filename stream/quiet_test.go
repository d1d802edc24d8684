package stream

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestQuietCountsRepeatedWarnings: a warning said 10,000 times in a burst
// is written once, and the next one after the window carries the count.
// Other messages and lower levels are not held back.
func TestQuietCountsRepeatedWarnings(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	now := time.Unix(1000, 0)
	l := Quiet(zap.New(core, zap.WithClock(fixedClock{&now})), 10*time.Second)
	for i := 0; i < 10000; i++ {
		l.Warn("broker down", zap.Int("i", i))
		l.Info("progress")
	}
	l.Error("another message")
	now = now.Add(11 * time.Second)
	l.Warn("broker down", zap.Int("i", -1))

	down := logs.FilterMessage("broker down").All()
	if len(down) != 2 {
		t.Fatalf("%d 'broker down' lines written, want 2 (the first, then one with the count)", len(down))
	}
	if got := down[1].ContextMap()["repeated"]; got != int64(9999) {
		t.Errorf("the second line says repeated=%v, want 9999", got)
	}
	if n := logs.FilterMessage("progress").Len(); n != 10000 {
		t.Errorf("%d info lines written, want all 10000", n)
	}
	if n := logs.FilterMessage("another message").Len(); n != 1 {
		t.Errorf("another message written %d times, want 1", n)
	}
}

type fixedClock struct{ t *time.Time }

func (c fixedClock) Now() time.Time                         { return *c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
