package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/models"
)

// ErrCircuitOpen marks calls refused because the model's circuit is open.
var ErrCircuitOpen = errors.New("circuit open")

// BreakerConfig tunes Breaker.
type BreakerConfig struct {
	// Failures consecutive failed calls open the circuit (< 0: never).
	Failures int
	// Cooldown is how long it stays open before one call probes again.
	Cooldown time.Duration
	// Now replaces time.Now (tests); nil means time.Now.
	Now func() time.Time
	// Log receives the circuit's openings and closings; nil discards them.
	Log *zap.Logger
}

// Breaker opens the model's circuit after cfg.Failures consecutive failed
// calls: calls then fail at once with ErrCircuitOpen for cfg.Cooldown, so
// the step's bandit routes around the model without waiting on it; then
// one call at a time probes (half-open), and an answer closes the circuit.
// Errors marked models.BadInput, and calls cut short because the caller
// is stopping, are not held against the model.
func Breaker(name string, cfg BreakerConfig) Middleware {
	if cfg.Failures < 0 {
		return nil
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return func(next models.Model) models.Model {
		return &breaker{wrapped: wrapped{next}, name: name, cfg: cfg}
	}
}

type breaker struct {
	wrapped
	name string
	cfg  BreakerConfig

	mu        sync.Mutex
	failures  int
	openSince time.Time // zero while closed
	retryAt   time.Time
	probing   bool
	probeAt   time.Time // when the probe in flight began
	last      error
}

func (b *breaker) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	probe, err := b.allow()
	if err != nil {
		return nil, newError(err, "model %q failed: %v", b.name, err)
	}
	out, err := b.next.Predict(ctx, in)
	switch {
	case err == nil:
		if b.success() {
			b.cfg.Log.Info("circuit closed: the model answers again", zap.String("model", b.name))
		}
	case models.IsBadInput(err) || ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		b.abandon(probe)
	default:
		if b.failure(err) {
			b.cfg.Log.Warn("circuit opened: calls fail fast until the cool-down ends", zap.String("model", b.name),
				zap.Int("consecutive_failures", b.cfg.Failures), zap.Duration("cooldown", b.cfg.Cooldown), zap.Error(err))
		}
	}
	return out, err
}

// allow lets a call through, or refuses it while the circuit is open. The
// one call let through after the cool-down is the probe. A probe that has
// not come back within another cool-down (a model that hangs, abandoned
// by the timeout around it) is given up, and the next call probes.
func (b *breaker) allow() (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openSince.IsZero() {
		return false, nil
	}
	now := b.cfg.Now()
	if b.probing && now.Sub(b.probeAt) < b.cfg.Cooldown {
		return false, fmt.Errorf("%w: model down since %s after %d consecutive failures (last: %v); a probe call is in flight since %s",
			ErrCircuitOpen, b.openSince.UTC().Format(time.RFC3339), b.failures, b.last, b.probeAt.UTC().Format(time.RFC3339))
	}
	if !b.probing && now.Before(b.retryAt) {
		return false, fmt.Errorf("%w: model down since %s after %d consecutive failures (last: %v); retrying after %s",
			ErrCircuitOpen, b.openSince.UTC().Format(time.RFC3339), b.failures, b.last, b.retryAt.UTC().Format(time.RFC3339))
	}
	b.probing, b.probeAt = true, now // half-open: this call probes
	return true, nil
}

// abandon releases the probe of a call that ended before the model could
// answer; without it the circuit would stay open for good.
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// failure records a failed call and reports whether the circuit opened.
func (b *breaker) failure(err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.last = err
	wasOpen := !b.openSince.IsZero()
	if b.probing || b.failures >= b.cfg.Failures {
		now := b.cfg.Now()
		if !wasOpen {
			b.openSince = now
		}
		b.retryAt = now.Add(b.cfg.Cooldown)
		b.probing = false
		return !wasOpen
	}
	return false
}

// success records an answered call and reports whether the circuit closed.
func (b *breaker) success() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasOpen := !b.openSince.IsZero()
	b.failures, b.openSince, b.probing, b.last = 0, time.Time{}, false, nil
	return wasOpen
}
