package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms FlexiFlow speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Secret is a password or key. It prints, logs and marshals as "[redacted]"
// so that it cannot leak through fmt, zap or JSON; read it with Reveal.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts under %#v too.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText redacts in JSON, YAML and zap's reflection encoder.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// TLS says how to encrypt connections to the brokers and check who they are.
// A zero TLS (all fields empty) uses the system's certificate authorities.
type TLS struct {
	// CAFile is a PEM file of the certificate authorities that signed the
	// brokers' certificates (empty: the system's).
	CAFile string
	// CertFile and KeyFile are this client's certificate and key (PEM), for
	// brokers that require client certificates (mutual TLS).
	CertFile, KeyFile string
	// ServerName overrides the name checked against the broker's
	// certificate (default: the host of the address dialed).
	ServerName string
	// InsecureSkipVerify accepts any broker certificate: for experiments
	// only, since anyone on the path can then read the traffic.
	InsecureSkipVerify bool
}

// SASL says how the client authenticates to the brokers.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	User      string
	Password  Secret
}

// String describes the settings without the password.
func (s SASL) String() string {
	return fmt.Sprintf("SASL %s user %q password %s", s.Mechanism, s.User, s.Password)
}

// String describes the client configuration without secrets, for logs.
func (c Config) String() string {
	parts := []string{"brokers " + strings.Join(c.Brokers, ",")}
	if c.TLS != nil {
		t := "TLS"
		if c.TLS.CAFile != "" {
			t += " ca " + c.TLS.CAFile
		}
		if c.TLS.CertFile != "" {
			t += " client-cert " + c.TLS.CertFile
		}
		if c.TLS.InsecureSkipVerify {
			t += " (certificate NOT verified)"
		}
		parts = append(parts, t)
	} else {
		parts = append(parts, "plaintext")
	}
	if c.SASL != nil {
		parts = append(parts, c.SASL.String())
	}
	return strings.Join(parts, ", ")
}

// Validate checks the security settings: the mechanism is one FlexiFlow
// speaks, a user and password are given, and the TLS files load. Every
// error names the flag to fix.
func (c Config) Validate() error {
	if c.SASL != nil {
		switch strings.ToUpper(c.SASL.Mechanism) {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return fmt.Errorf("--kafka-sasl-mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
		}
		if c.SASL.User == "" {
			return fmt.Errorf("SASL %s needs a user: set --kafka-sasl-user", c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			return fmt.Errorf("SASL %s for user %q needs a password: set FLEXIFLOW_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file", c.SASL.Mechanism, c.SASL.User)
		}
	}
	if c.TLS != nil {
		if _, err := c.TLS.config(); err != nil {
			return err
		}
	}
	return nil
}

// config builds the tls.Config, reading the files.
func (t *TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca: %w; give the PEM file of the authority that signed the brokers' certificates", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca %s holds no PEM certificate; give the CA certificate in PEM (-----BEGIN CERTIFICATE-----)", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("--kafka-tls-cert and --kafka-tls-key go together: give both for a client certificate, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate --kafka-tls-cert %s / --kafka-tls-key %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// securityOpts returns the client options for TLS and SASL. A setting that
// cannot be used makes every dial fail with the reason, so the error comes
// out of the first request (and Ping reports it at start).
func (c Config) securityOpts() []kgo.Opt {
	var opts []kgo.Opt
	if c.TLS != nil {
		cfg, err := c.TLS.config()
		if err != nil {
			return []kgo.Opt{kgo.Dialer(func(context.Context, string, string) (net.Conn, error) { return nil, err })}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.SASL != nil {
		if m := c.SASL.mechanism(); m != nil {
			opts = append(opts, kgo.SASL(m))
		}
	}
	return opts
}

func (s *SASL) mechanism() sasl.Mechanism {
	user, pass := s.User, s.Password.Reveal()
	switch strings.ToUpper(s.Mechanism) {
	case SASLPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	}
	return nil
}

// permanent turns errors that retrying cannot fix (bad credentials, a
// certificate the client does not trust, TLS against a plaintext port) into
// a message saying what to change; it returns nil for other errors.
func (c Config) permanent(err error) error {
	addrs := strings.Join(c.Brokers, ",")
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var recordHeader tls.RecordHeaderError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		if c.SASL == nil {
			return fmt.Errorf("Kafka at %s refused to authenticate: %w", addrs, err)
		}
		return fmt.Errorf("SASL authentication failed for user %q with %s at %s: check the password (FLEXIFLOW_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file), the user and the mechanism (--kafka-sasl-mechanism): %w",
			c.SASL.User, strings.ToUpper(c.SASL.Mechanism), addrs, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("Kafka at %s does not accept SASL mechanism %s on this listener: set --kafka-sasl-mechanism to one the listener enables (sasl.enabled.mechanisms): %w",
			addrs, c.saslName(), err)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("the certificate of Kafka at %s is not trusted: give the CA that signed it with --kafka-tls-ca, or the name it was issued for with --kafka-tls-server-name: %w", addrs, err)
	case c.TLS == nil && strings.Contains(err.Error(), "plaintext connection speaking to a tls endpoint"):
		return fmt.Errorf("Kafka at %s expects TLS on this port: add --kafka-tls (and --kafka-tls-ca if a private CA signed its certificate): %w", addrs, err)
	case errors.As(err, &recordHeader):
		return fmt.Errorf("Kafka at %s does not speak TLS on this port: drop --kafka-tls or use the broker's TLS listener: %w", addrs, err)
	}
	return nil
}

func (c Config) saslName() string {
	if c.SASL == nil {
		return "(none)"
	}
	return strings.ToUpper(c.SASL.Mechanism)
}
