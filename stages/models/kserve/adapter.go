package kserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/models"
)

// client is one protocol binding.
type client interface {
	Infer(ctx context.Context, id string, in []*tensor) ([]*tensor, error)
	Ready(ctx context.Context) error
	Close() error
}

// transportError is a failure to get an answer that is worth trying again:
// connection refused or reset, HTTP 502/503/504, gRPC UNAVAILABLE. Every
// other failure (the model's own answer, any other status) is a plain
// error and is not retried.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// ErrCircuitOpen marks calls refused because the model's circuit is open.
var ErrCircuitOpen = errors.New("circuit open")

// Model is a served model as a FlexiFlow models.Model: Predict maps the
// batch to tensors, calls the server, and maps the answer back.
type Model struct {
	cfg     Config
	client  client
	sem     chan struct{}
	breaker *breaker
	log     *zap.Logger
	seq     atomic.Uint64
}

// Option adjusts a Model.
type Option func(*Model)

// WithLogger logs retries and circuit changes to l.
func WithLogger(l *zap.Logger) Option { return func(m *Model) { m.log = l } }

// WithClock replaces time.Now for the circuit breaker (tests).
func WithClock(now func() time.Time) Option { return func(m *Model) { m.breaker.now = now } }

// New builds the adapter for cfg. It does not contact the server: a server
// that is down makes calls fail, which the stage records as failed attempts.
func New(cfg Config, opts ...Option) (*Model, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("served model %q: %w", cfg.Name, err)
	}
	token := tokenSource(cfg)
	var outputs []string // the output tensors to request, each once
	for _, o := range cfg.Outputs {
		if !slices.Contains(outputs, o.Tensor) {
			outputs = append(outputs, o.Tensor)
		}
	}
	m := &Model{cfg: cfg, log: zap.NewNop(),
		breaker: &breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown, now: time.Now}}
	switch cfg.Protocol {
	case ProtocolGRPC:
		if m.client, err = newGRPC(&cfg, outputs, tlsConf, token); err != nil {
			return nil, fmt.Errorf("served model %q: %w", cfg.Name, err)
		}
	default:
		m.client = newREST(&cfg, outputs, tlsConf, token)
	}
	if cfg.MaxConcurrency > 0 {
		m.sem = make(chan struct{}, cfg.MaxConcurrency)
	}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With(zap.String("model", cfg.Name), zap.String("served", cfg.Model), zap.String("url", cfg.URL))
	return m, nil
}

// Config returns the model's configuration, defaults filled in.
func (m *Model) Config() Config { return m.cfg }

// PriceMS is the configured price per call, if any: the stage's bandit
// then counts it as the model's cost instead of the measured latency.
func (m *Model) PriceMS() (float64, bool) {
	if m.cfg.PriceMS == nil {
		return 0, false
	}
	return *m.cfg.PriceMS, true
}

// Ready asks the server whether the model is ready.
func (m *Model) Ready(ctx context.Context) error { return m.client.Ready(ctx) }

// Close releases the model's connections.
func (m *Model) Close() error { return m.client.Close() }

// Predict answers a batch through the server. Errors say what failed:
// the circuit, the transport (after retries), the server's answer, or the
// mapping of the answer back to records.
func (m *Model) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	if len(in) == 0 {
		return []models.Record{}, nil
	}
	probe, err := m.breaker.allow()
	if err != nil {
		return nil, fmt.Errorf("served model %s at %s: %w", m.cfg.Model, m.cfg.URL, err)
	}
	inputs, err := buildInputs(m.cfg.Inputs, in)
	if err != nil {
		// The batch does not fit the mapping; the server is not to blame.
		m.breaker.abandon(probe)
		return nil, fmt.Errorf("mapping the batch to %s's input tensors: %w", m.cfg.Model, err)
	}
	if m.sem != nil {
		select {
		case m.sem <- struct{}{}:
			defer func() { <-m.sem }()
		case <-ctx.Done():
			m.breaker.abandon(probe)
			return nil, fmt.Errorf("waiting for one of %s's %d concurrent call slots: %w", m.cfg.Model, m.cfg.MaxConcurrency, ctx.Err())
		}
	}
	id := m.cfg.Name + "-" + strconv.FormatUint(m.seq.Add(1), 10)
	tensors, err := m.call(ctx, id, inputs)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			m.breaker.abandon(probe)
			return nil, err // the stage is stopping: not the model's fault
		}
		if m.breaker.failure(err) {
			m.log.Warn("circuit opened: calls fail fast until the cool-down ends",
				zap.Int("consecutive_failures", m.cfg.BreakerFailures), zap.Duration("cooldown", m.cfg.BreakerCooldown), zap.Error(err))
		}
		return nil, err
	}
	out := make([]models.Record, len(in))
	for i, rec := range in {
		o := make(models.Record, len(m.cfg.Carry)+len(m.cfg.Outputs))
		for _, f := range m.cfg.Carry {
			if v, ok := rec[f]; ok {
				o[f] = v
			}
		}
		out[i] = o
	}
	if err := applyOutputs(m.cfg.Outputs, tensors, out); err != nil {
		m.breaker.success() // the server answered; the mapping is wrong
		return nil, fmt.Errorf("served model %s answered, but: %w", m.cfg.Model, err)
	}
	if m.breaker.success() {
		m.log.Info("circuit closed: the model answers again")
	}
	return out, nil
}

// call makes one inference, retrying transport failures with backoff.
func (m *Model) call(ctx context.Context, id string, inputs []*tensor) ([]*tensor, error) {
	backoff := m.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		out, err := m.client.Infer(ctx, id, inputs)
		if err == nil {
			return out, nil
		}
		var te *transportError
		if !errors.As(err, &te) || attempt >= m.cfg.Retries {
			if attempt > 0 {
				return nil, fmt.Errorf("%w (after %d retries)", err, attempt)
			}
			return nil, err
		}
		m.log.Debug("retrying after a transport error", zap.Int("retry", attempt+1), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up retrying: %v)", err, ctx.Err())
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// breaker opens after threshold consecutive failures and stays open for
// cooldown; then one call at a time probes the model (half-open).
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openSince time.Time // zero while closed
	retryAt   time.Time
	probing   bool
	last      error
}

// allow lets a call through, or refuses it while the circuit is open. The
// one call let through after the cool-down is the probe: its outcome is
// recorded by failure or success, or, if it ends without reaching the
// server, handed back with abandon so that the next call probes instead.
func (b *breaker) allow() (probe bool, err error) {
	if b.threshold < 0 {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openSince.IsZero() {
		return false, nil
	}
	now := b.now()
	if now.Before(b.retryAt) || b.probing {
		return false, fmt.Errorf("%w: model down since %s after %d consecutive failures (last: %v); retrying after %s",
			ErrCircuitOpen, b.openSince.UTC().Format(time.RFC3339), b.failures, b.last, b.retryAt.UTC().Format(time.RFC3339))
	}
	b.probing = true // half-open: this call probes
	return true, nil
}

// abandon releases the probe of a call that ended before the server could
// answer (its batch did not fit the mapping, or the stage is stopping);
// without it the circuit would stay open for good.
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
	if b.threshold < 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.last = err
	wasOpen := !b.openSince.IsZero()
	if b.probing || b.failures >= b.threshold {
		now := b.now()
		if !wasOpen {
			b.openSince = now
		}
		b.retryAt = now.Add(b.cooldown)
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

func tlsConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// tokenSource reads the bearer token from the environment or a file on
// every call (so a rotated file is picked up); nil when none is set.
func tokenSource(c Config) func() (string, error) {
	switch {
	case c.TokenEnv != "":
		name := c.TokenEnv
		return func() (string, error) {
			t := strings.TrimSpace(os.Getenv(name))
			if t == "" {
				return "", fmt.Errorf("environment variable %s (token_env) is empty; set it to the server's bearer token", name)
			}
			return t, nil
		}
	case c.TokenFile != "":
		path := c.TokenFile
		return func() (string, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("reading token_file: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}
	}
	return nil
}
