package stream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// secureBroker starts a real Apache Kafka broker of its own (instance
// secure-test, ports 19392/19393, never the shared one) with a SASL_SSL
// listener and a SCRAM user, and stops it when the test ends. It returns
// the address and the CA file. Without Java or Maven the test is skipped
// with the reason, except under CI.
func secureBroker(t *testing.T, user, password string) (addr, caFile string) {
	t.Helper()
	script, err := filepath.Abs("../deploy/kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(script)))
	env := append(os.Environ(), "KAFKA_INSTANCE=secure-test", "KAFKA_PORT=19392", "KAFKA_CONTROLLER_PORT=19393",
		"KAFKA_SECURITY=sasl_ssl", "KAFKA_SCRAM_USER="+user, "KAFKA_SCRAM_PASSWORD="+password)
	kafka := func(action string) ([]byte, error) {
		cmd := exec.Command("bash", script, action)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	// reset: the SCRAM users are created when the storage is formatted.
	if out, err := kafka("reset"); err != nil {
		t.Fatalf("kafka.sh reset: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := kafka("up"); err != nil {
		msg := fmt.Sprintf("cannot start a real Kafka broker with a SASL_SSL listener: %v\n%s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Logf("secure broker up in %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if out, err := kafka("reset"); err != nil {
			t.Errorf("kafka.sh reset: %v\n%s", err, out)
		}
	})
	return "127.0.0.1:19392", filepath.Join(root, ".cache", "kafka", "secure-test", "secure", "ca.pem")
}

// TestSecuritySCRAMOverTLS runs clients against a real Kafka broker's
// SASL_SSL listener: the right password over TLS produces and consumes,
// a wrong one fails at once with a message that says what to check.
func TestSecuritySCRAMOverTLS(t *testing.T) {
	pass := randomPassword(t)
	addr, ca := secureBroker(t, "flexiflow", pass)
	ctx := context.Background()
	cfg := func(mech, password string, tls *stream.TLS) stream.Config {
		return stream.Config{Brokers: []string{addr}, ConnectTimeout: 5 * time.Second, TLS: tls,
			SASL: &stream.SASL{Mechanism: mech, User: "flexiflow", Password: stream.Secret(password)}}
	}
	trusted := &stream.TLS{CAFile: ca}

	for _, mech := range []string{stream.SASLScramSHA512, stream.SASLScramSHA256} {
		t.Run(mech+" right password", func(t *testing.T) {
			c := cfg(mech, pass, trusted)
			if err := stream.Ping(ctx, c); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			topic := streamtest.Unique("secure-")
			if err := stream.EnsureTopics(ctx, c, 1, topic); err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: []byte("over TLS with " + mech)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			fs := cl.PollFetches(pctx)
			if err := fs.Err(); err != nil {
				t.Fatalf("consume: %v", err)
			}
			if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "over TLS with "+mech {
				t.Fatalf("consumed %d records, want the one produced", len(recs))
			}
		})
	}

	cases := []struct {
		name  string
		cfg   stream.Config
		wants []string
	}{
		{"wrong password", cfg(stream.SASLScramSHA512, "not-"+pass, trusted),
			[]string{`SASL authentication failed for user "flexiflow" with SCRAM-SHA-512 at ` + addr, "check the password"}},
		{"wrong password SHA-256", cfg(stream.SASLScramSHA256, "not-"+pass, trusted),
			[]string{`SASL authentication failed for user "flexiflow" with SCRAM-SHA-256`}},
		{"unknown user", stream.Config{Brokers: []string{addr}, ConnectTimeout: 5 * time.Second, TLS: trusted,
			SASL: &stream.SASL{Mechanism: stream.SASLScramSHA512, User: "nobody", Password: stream.Secret(pass)}},
			[]string{`SASL authentication failed for user "nobody"`}},
		{"untrusted certificate", cfg(stream.SASLScramSHA512, pass, &stream.TLS{}),
			[]string{"certificate of Kafka at " + addr + " is not trusted", "--kafka-tls-ca"}},
		{"plaintext to the TLS listener", stream.Config{Brokers: []string{addr}, ConnectTimeout: 2 * time.Second},
			[]string{"Kafka at " + addr + " expects TLS on this port: add --kafka-tls"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := stream.Ping(ctx, c.cfg)
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), pass) {
				t.Errorf("error reveals the password: %v", err)
			}
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func randomPassword(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestSecurityRedaction checks a password never shows when a Config is
// printed, logged or marshalled.
func TestSecurityRedaction(t *testing.T) {
	const pass = "hunter2-very-secret"
	cfg := stream.Config{Brokers: []string{"k:9093"}, TLS: &stream.TLS{CAFile: "ca.pem"},
		SASL: &stream.SASL{Mechanism: stream.SASLScramSHA512, User: "u", Password: pass}}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	log.Info("config", zap.Stringer("kafka", cfg), zap.Any("sasl", cfg.SASL), zap.Any("secret", cfg.SASL.Password), zap.Reflect("cfg", cfg))
	j, err := json.Marshal(cfg.SASL)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&buf, "%s=%v\n", k, v)
		}
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%v SASL": fmt.Sprintf("%v", *cfg.SASL), "%+v SASL": fmt.Sprintf("%+v", *cfg.SASL), "%#v SASL": fmt.Sprintf("%#v", *cfg.SASL),
		"String": cfg.String(), "json": string(j), "zap": buf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, pass) {
			t.Errorf("%s reveals the password: %s", name, out)
		}
	}
	if !strings.Contains(cfg.String(), "[redacted]") || !strings.Contains(cfg.String(), "SCRAM-SHA-512") {
		t.Errorf("String() = %q, want the mechanism and [redacted]", cfg.String())
	}
	if cfg.SASL.Password.Reveal() != pass {
		t.Error("Reveal must return the password")
	}
}

// TestSecurityValidate checks settings that cannot work are refused before
// any connection, naming the flag to fix.
func TestSecurityValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	sasl := func(mech, user, pass string) *stream.SASL {
		return &stream.SASL{Mechanism: mech, User: user, Password: stream.Secret(pass)}
	}
	cases := []struct {
		name string
		cfg  stream.Config
		want string // "" means valid
	}{
		{"plaintext", stream.Config{}, ""},
		{"scram", stream.Config{SASL: sasl("scram-sha-256", "u", "p")}, ""},
		{"tls system CAs", stream.Config{TLS: &stream.TLS{}}, ""},
		{"unknown mechanism", stream.Config{SASL: sasl("GSSAPI", "u", "p")}, "--kafka-sasl-mechanism \"GSSAPI\": use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"no user", stream.Config{SASL: sasl("PLAIN", "", "p")}, "--kafka-sasl-user"},
		{"no password", stream.Config{SASL: sasl("SCRAM-SHA-512", "u", "")}, "FLEXIFLOW_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file"},
		{"missing CA file", stream.Config{TLS: &stream.TLS{CAFile: filepath.Join(dir, "nope.pem")}}, "--kafka-tls-ca"},
		{"CA not PEM", stream.Config{TLS: &stream.TLS{CAFile: notPEM}}, "holds no PEM certificate"},
		{"cert without key", stream.Config{TLS: &stream.TLS{CertFile: notPEM}}, "--kafka-tls-cert and --kafka-tls-key go together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("want valid, got %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
			if c.want != "" {
				// Ping refuses the same settings without dialing.
				c.cfg.Brokers = []string{"127.0.0.1:1"}
				if err := stream.Ping(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Ping: got %v, want %q", err, c.want)
				}
			}
		})
	}
}
