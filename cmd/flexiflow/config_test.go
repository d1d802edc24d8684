package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestConfigPrecedence checks flags > environment > config file > defaults
// on the real command tree, one table row per situation.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "flexiflow.yaml")
	if err := os.WriteFile(file, []byte(`# one file for every role
brokers: [file-1:9092, file-2:9092]
metrics-addr: ":9100"
replicas: 2
log-level: debug
batches: 77          # produce's: ignored by stage
create-topics: false
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Where secrets live is configuration, not a secret: a file may name
	// the password files (mounted secrets) for every role.
	secretPaths := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(secretPaths, []byte("kafka-sasl-password-file: /run/secrets/kafka\nclickhouse-password-file: /run/secrets/clickhouse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		config string
		want   map[string]string // flag → value
	}{
		{"defaults", []string{"stage"}, nil, "",
			map[string]string{"brokers": "", "metrics-addr": "", "replicas": "1", "create-topics": "true", "connect-timeout": "15s"}},
		{"file", []string{"stage"}, nil, file,
			map[string]string{"brokers": "file-1:9092,file-2:9092", "metrics-addr": ":9100", "replicas": "2", "log-level": "debug", "create-topics": "false"}},
		{"file named by FLEXIFLOW_CONFIG", []string{"stage"}, map[string]string{"FLEXIFLOW_CONFIG": file}, "",
			map[string]string{"brokers": "file-1:9092,file-2:9092"}},
		{"environment over file", []string{"stage"},
			map[string]string{"FLEXIFLOW_BROKERS": "env:9092", "FLEXIFLOW_CREATE_TOPICS": "true", "FLEXIFLOW_CONNECT_TIMEOUT": "3s"}, file,
			map[string]string{"brokers": "env:9092", "replicas": "2", "create-topics": "true", "connect-timeout": "3s"}},
		{"flags over environment and file", []string{"stage", "--brokers", "flag:9092", "--replicas=3", "--log-level", "warn"},
			map[string]string{"FLEXIFLOW_BROKERS": "env:9092", "FLEXIFLOW_REPLICAS": "5"}, file,
			map[string]string{"brokers": "flag:9092", "replicas": "3", "log-level": "warn", "metrics-addr": ":9100"}},
		{"another command's key applies there", []string{"produce"}, nil, file,
			map[string]string{"batches": "77", "brokers": "file-1:9092,file-2:9092"}},
		{"flag equal to the default still wins", []string{"stage", "--replicas", "1"}, map[string]string{"FLEXIFLOW_REPLICAS": "4"}, file,
			map[string]string{"replicas": "1"}},
		{"password files from the file", []string{"stage"}, nil, secretPaths,
			map[string]string{"kafka-sasl-password-file": "/run/secrets/kafka", "clickhouse-password-file": "/run/secrets/clickhouse"}},
		{"kafka security from the environment", []string{"stage"},
			map[string]string{"FLEXIFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "FLEXIFLOW_KAFKA_TLS_CA": "/ca.pem"}, "",
			map[string]string{"kafka-sasl-mechanism": "SCRAM-SHA-512", "kafka-tls-ca": "/ca.pem"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd, err := layered(t, c.args, c.env, c.config)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range c.want {
				f := cmd.Flags().Lookup(name)
				if f == nil {
					t.Fatalf("no flag --%s", name)
				}
				if got := f.Value.String(); strings.Trim(got, "[]") != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// layered parses args on the real command tree as flexiflow would and
// applies the environment env and config file.
func layered(t *testing.T, args []string, env map[string]string, config string) (*cobra.Command, error) {
	t.Helper()
	root := newRoot()
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return cmd, applyLayers(cmd, root, config, lookup)
}

// TestConfigErrors checks each mistake in a config file or the environment
// stops the command with a message naming where it is and what to change.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := write("unknown.yaml", "brokers: k:9092\nbrokerz: k:9093\n")
	badInt := write("int.yaml", "replicas: many\n")
	badDur := write("dur.yaml", "\nconnect-timeout: soon\n")
	nested := write("map.yaml", "brokers: {a: 1}\n")
	password := write("password.yaml", "kafka-sasl-password: hunter2\n")
	list := write("list.yaml", "- brokers\n")
	invalid := write("invalid.yaml", "brokers: [\n")
	self := write("self.yaml", "config: other.yaml\n")
	cases := []struct {
		name   string
		env    map[string]string
		config string
		wants  []string
	}{
		{"unknown key", nil, unknown, []string{unknown + `:2: unknown setting "brokerz"`, "brokers"}},
		{"bad number", nil, badInt, []string{badInt + ":1: replicas (sets --replicas)", `invalid argument "many"`}},
		{"bad duration", nil, badDur, []string{badDur + ":2: connect-timeout"}},
		{"map value", nil, nested, []string{nested + ":1: brokers", "not a map"}},
		{"secret in the file", nil, password, []string{password + `:1: unknown setting "kafka-sasl-password"`}},
		{"not a map", nil, list, []string{list + ":1: the config file must be a map"}},
		{"invalid YAML", nil, invalid, []string{"--config " + invalid + " is not valid YAML"}},
		{"config names a config", nil, self, []string{self + ":1: a config file cannot name another config file"}},
		{"missing file", nil, filepath.Join(dir, "nope.yaml"), []string{"--config: open " + filepath.Join(dir, "nope.yaml")}},
		{"bad environment value", map[string]string{"FLEXIFLOW_REPLICAS": "lots"}, "",
			[]string{"environment variable FLEXIFLOW_REPLICAS (sets --replicas)", `invalid argument "lots"`}},
		{"bad environment bool", map[string]string{"FLEXIFLOW_CREATE_TOPICS": "maybe"}, "",
			[]string{"environment variable FLEXIFLOW_CREATE_TOPICS (sets --create-topics)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := layered(t, []string{"stage"}, c.env, c.config)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestConfigBinary runs the real binary: a required flag given by the
// environment satisfies it, the file's brokers are the ones dialed, and a
// wrong key stops the command before anything else.
func TestConfigBinary(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flexiflow.yaml")
	if err := os.WriteFile(cfg, []byte("brokers: 127.0.0.1:1\nconnect-timeout: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("FLEXIFLOW_STEP", "denoise")
		t.Setenv("FLEXIFLOW_CONFIG", cfg)
		_, stderr, err := run(t, 30*time.Second, "stage")
		if err == nil || !strings.Contains(stderr, "cannot reach Kafka at 127.0.0.1:1 within 1s") {
			t.Errorf("stage with --step from the environment and brokers from the file: err %v, stderr:\n%s", err, stderr)
		}
	})
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("stepp: denoise\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := run(t, 30*time.Second, "stage", "--config", bad, "--brokers", "x:1")
	if err == nil || !strings.Contains(stderr, bad+`:1: unknown setting "stepp"`) {
		t.Errorf("unknown key: err %v, stderr:\n%s", err, stderr)
	}
	// The SASL password is read from its file and never printed.
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = run(t, 30*time.Second, "stage", "--step", "denoise", "--brokers", "127.0.0.1:1", "--connect-timeout", "1s",
		"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", pw, "--log-level", "debug")
	if err == nil || !strings.Contains(stderr, "password [redacted]") || strings.Contains(stderr, "hunter2") {
		t.Errorf("SASL from a password file: err %v, stderr:\n%s", err, stderr)
	}
	// PLAIN without TLS is warned about once, however often the settings
	// are checked.
	t.Run("PLAIN without TLS", func(t *testing.T) {
		t.Setenv(envSASLPassword, "hunter2-secret")
		_, stderr, err := run(t, 30*time.Second, "stage", "--step", "denoise", "--brokers", "127.0.0.1:1", "--connect-timeout", "1s",
			"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u")
		if n := strings.Count(stderr, "SASL PLAIN without TLS sends the password in clear text"); err == nil || n != 1 || strings.Contains(stderr, "hunter2") {
			t.Errorf("PLAIN without TLS: err %v, %d warnings, stderr:\n%s", err, n, stderr)
		}
	})
	_, stderr, err = run(t, 30*time.Second, "stage", "--step", "denoise", "--brokers", "127.0.0.1:1", "--kafka-sasl-user", "u")
	if err == nil || !strings.Contains(stderr, "need --kafka-sasl-mechanism") {
		t.Errorf("SASL user without mechanism: err %v, stderr:\n%s", err, stderr)
	}
}

// TestConfigProbeCommand checks `flexiflow probe`, the health check of
// images without curl: 0 on 200, an error with the status otherwise.
func TestConfigProbeCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "not ready: a stage has not joined its consumer group yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	if out, stderr, err := run(t, 10*time.Second, "probe", srv.URL+"/healthz"); err != nil || out != "ok\n" {
		t.Errorf("healthy endpoint: err %v, stdout %q, stderr %s", err, out, stderr)
	}
	if _, stderr, err := run(t, 10*time.Second, "probe", srv.URL+"/readyz"); err == nil || !strings.Contains(stderr, "503 Service Unavailable: not ready") {
		t.Errorf("unready endpoint: err %v, stderr %s", err, stderr)
	}
	if _, stderr, err := run(t, 10*time.Second, "probe", "--timeout", "1s", "http://127.0.0.1:1/healthz"); err == nil || !strings.Contains(stderr, "probe http://127.0.0.1:1/healthz") {
		t.Errorf("nothing listening: err %v, stderr %s", err, stderr)
	}
}
