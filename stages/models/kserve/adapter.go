package kserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/models"
)

// client is one protocol binding.
type client interface {
	Infer(ctx context.Context, id string, in []*tensor) ([]*tensor, error)
	Ready(ctx context.Context) error
	Close() error
}

// Model is a served model as a FlexiFlow models.Model: Predict maps the
// batch to tensors, calls the server, and maps the answer back.
type Model struct {
	cfg    Config
	client client
	log    *zap.Logger
	seq    atomic.Uint64
}

// Option adjusts a Model.
type Option func(*Model)

// WithLogger logs retries and circuit changes to l.
func WithLogger(l *zap.Logger) Option { return func(m *Model) { m.log = l } }

// New builds the adapter for cfg. It does not contact the server: a server
// that is down makes calls fail, which the stage records as failed attempts.
func New(cfg Config, opts ...Option) (*Model, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("served model %q: %w", cfg.Name, err)
	}
	tlsConf, err := tlsConfig(cfg.Auth.CAFile)
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
	m := &Model{cfg: cfg, log: zap.NewNop()}
	switch cfg.Protocol {
	case ProtocolGRPC:
		if m.client, err = newGRPC(&cfg, outputs, tlsConf, token); err != nil {
			return nil, fmt.Errorf("served model %q: %w", cfg.Name, err)
		}
	default:
		m.client = newREST(&cfg, outputs, tlsConf, token)
	}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With(zap.String("model", cfg.Name), zap.String("served", cfg.Model), zap.String("url", cfg.URL))
	return m, nil
}

// Config returns the model's configuration, defaults filled in.
func (m *Model) Config() Config { return m.cfg }

// Ready asks the server whether the model is ready.
func (m *Model) Ready(ctx context.Context) error { return m.client.Ready(ctx) }

// Close releases the model's connections.
func (m *Model) Close() error { return m.client.Close() }

// Predict answers a batch through the server. Errors say what failed:
// the transport (marked models.Retryable), the server's answer, the
// mapping of the batch to tensors (marked models.BadInput: the batch's
// fault, not the server's), or the mapping of the answer back to records.
func (m *Model) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	if len(in) == 0 {
		return []models.Record{}, nil
	}
	inputs, err := buildInputs(m.cfg.Inputs, in)
	if err != nil {
		return nil, models.BadInput(fmt.Errorf("mapping the batch to %s's input tensors: %w", m.cfg.Model, err))
	}
	id := m.cfg.Name + "-" + strconv.FormatUint(m.seq.Add(1), 10)
	tensors, err := m.client.Infer(ctx, id, inputs)
	if err != nil {
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
		return nil, fmt.Errorf("served model %s answered, but: %w", m.cfg.Model, err)
	}
	return out, nil
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
	case c.Auth.TokenEnv != "":
		name := c.Auth.TokenEnv
		return func() (string, error) {
			t := strings.TrimSpace(os.Getenv(name))
			if t == "" {
				return "", fmt.Errorf("environment variable %s (token_env) is empty; set it to the server's bearer token", name)
			}
			return t, nil
		}
	case c.Auth.TokenFile != "":
		path := c.Auth.TokenFile
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
