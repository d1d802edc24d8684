package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/sinks/clickhouse"
	"github.com/flexiflow/flexiflow/sinks/clickhouse/chdbtest"
)

// TestClickHouseBadInput checks the ClickHouse commands' mistakes: each
// exits non-zero with a message saying what to do, and no DSN password
// appears in any output.
func TestClickHouseBadInput(t *testing.T) {
	dir := t.TempDir()
	wfFile := filepath.Join(dir, "digits.yaml")
	out, _, err := run(t, 30*time.Second, "demo", "--print-workflow")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wfFile, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	down := "clickhouse://flexiflow:s3cret-pw@127.0.0.1:1/flexiflow?dial_timeout=1s"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"migrate without DSN", []string{"migrate"}, "--clickhouse is required"},
		{"malformed DSN", []string{"migrate", "--clickhouse", "localhost:9000"}, "not a ClickHouse DSN"},
		{"bad DSN option", []string{"migrate", "--clickhouse", "clickhouse://u:s3cret-pw@h:9000/db?dial_timeout=soon"}, "--clickhouse clickhouse://u:xxxxx@h:9000/db"},
		{"ClickHouse down", []string{"migrate", "--clickhouse", down}, "cannot reach ClickHouse at 127.0.0.1:1"},
		{"query, ClickHouse down", []string{"switches", "--workflow", "digits", "--clickhouse", down}, "check that the server runs"},
		{"sink, ClickHouse down", []string{"--connect-timeout", "1s", "sink", "--workflow", wfFile, "--brokers", "127.0.0.1:1", "--clickhouse", down}, "cannot reach Kafka"},
		{"sink without workflow", []string{"sink", "--clickhouse", down}, "--workflow is required"},
		{"drift without windows", []string{"drift", "--workflow", "digits", "--step", "denoise", "--clickhouse", down}, "--reference and --recent are required"},
		{"malformed window", []string{"drift", "--workflow", "digits", "--step", "denoise", "--reference", "2026-11-23 10:00", "--recent", "-1h/now", "--clickhouse", down}, "give FROM/TO"},
		{"window backwards", []string{"drift", "--workflow", "digits", "--step", "denoise", "--reference", "-1h/-2h", "--recent", "-1h/now", "--clickhouse", down}, "is not after the start"},
		{"bad batch window", []string{"drift", "--workflow", "digits", "--step", "denoise", "--reference", "batches:10-5", "--recent", "batches:0-", "--clickhouse", down}, "greater than the start"},
		{"bad since", []string{"switches", "--workflow", "digits", "--since", "last tuesday", "--clickhouse", down}, "neither an RFC 3339 time"},
		{"unknown step in workflow file", []string{"drift", "--workflow", wfFile, "--step", "nope", "--reference", "-2h/-1h", "--recent", "-1h/now", "--clickhouse", down}, "nope"},
		{"missing workflow file", []string{"switches", "--workflow", "missing.yaml", "--clickhouse", down}, "no such file"},
		{"bad format", []string{"trace", "--workflow", "digits", "--format", "xml", "--clickhouse", down, "b000001"}, "use table, json or csv"},
		{"trace without batch", []string{"trace", "--workflow", "digits", "--clickhouse", down}, "accepts 1 arg"},
		{"demo, ClickHouse down", []string{"demo", "--batches", "10", "--clickhouse", down}, "cannot reach ClickHouse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, err := run(t, 60*time.Second, c.args...)
			if err == nil {
				t.Fatalf("exit 0; stdout %s", stdout)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not say %q", stderr, c.want)
			}
			if strings.Contains(stdout+stderr, "s3cret-pw") {
				t.Errorf("the DSN password appears in the output: %s%s", stdout, stderr)
			}
		})
	}
}

// TestMigratePrint checks that migrate --print writes every shipped DDL
// statement and the version rows, without connecting.
func TestMigratePrint(t *testing.T) {
	stdout, stderr, err := run(t, 30*time.Second, "migrate", "--print")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	ms, err := clickhouse.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			if !strings.Contains(stdout, s+";") {
				t.Errorf("--print lacks %s statement %q", m.Name, firstLineOf(s))
			}
		}
		if !strings.Contains(stdout, fmt.Sprintf("VALUES (%d, '%s')", m.Version, m.Name)) {
			t.Errorf("--print does not record version %d", m.Version)
		}
	}
	for _, want := range []string{"CREATE TABLE IF NOT EXISTS flexiflow_schema_version", "ReplacingMergeTree", "LowCardinality(String)", "TTL ", "CREATE MATERIALIZED VIEW"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--print lacks %q", want)
		}
	}
}

func firstLineOf(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestClickHouseCommands runs migrate, demo --clickhouse (which runs the
// sink) and the query commands in every format as the real binary: against
// the server FLEXIFLOW_CLICKHOUSE_DSN names (in a database of its own), or
// else against the ClickHouse engine (chDB) behind
// deploy/clickhouse/chdb_http.py, through clickhouse-go/v2's HTTP protocol.
func TestClickHouseCommands(t *testing.T) {
	own := clickhouseForCLI(t)
	// Before migrate: the queries say to run it.
	_, stderr, err := run(t, time.Minute, "switches", "--workflow", "digits", "--clickhouse", own)
	if err == nil || !strings.Contains(stderr, "run: flexiflow migrate") {
		t.Fatalf("before migrate: %v %s", err, stderr)
	}
	stdout, stderr, err := run(t, time.Minute, "migrate", "--clickhouse", own)
	if err != nil || !strings.Contains(stdout, fmt.Sprintf("→ %d", clickhouse.LatestVersion())) {
		t.Fatalf("migrate: %v\n%s%s", err, stdout, stderr)
	}
	if stdout, _, err = run(t, time.Minute, "migrate", "--clickhouse", own); err != nil || !strings.Contains(stdout, "nothing to do") {
		t.Fatalf("migrate again: %v %s", err, stdout)
	}
	stdout, stderr, err = run(t, 5*time.Minute, "demo", "--batches", "600", "--clickhouse", own)
	if err != nil || !strings.Contains(stdout, "traces inserted") {
		t.Fatalf("demo --clickhouse: %v\n%s\n%s", err, stdout, stderr)
	}
	// plan profile reads the same traces out of ClickHouse.
	dir := t.TempDir()
	broker := filepath.Join(dir, "broker.json")
	if err := os.WriteFile(broker, []byte(`{"commit_ms": {"mean": 3, "p50": 3, "p99": 3, "quantiles": [3]}, "fetch_ms": {"mean": 1, "p50": 1, "p99": 1, "quantiles": [1]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, time.Minute, "plan", "profile", "--clickhouse", own); err == nil || !strings.Contains(stderr, "--clickhouse needs --broker-profile") {
		t.Errorf("plan profile --clickhouse without a broker profile: %v %s", err, stderr)
	}
	stdout, stderr, err = run(t, time.Minute, "plan", "profile", "--clickhouse", own, "--broker-profile", broker, "--min-traces", "1")
	if err != nil {
		t.Fatalf("plan profile --clickhouse: %v\n%s", err, stderr)
	}
	var prof struct {
		Traces int
		Source string
		Steps  []struct {
			Name    string
			Cascade []string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &prof); err != nil {
		t.Fatal(err)
	}
	if prof.Traces < 600*2 || len(prof.Steps) != 2 || prof.Steps[1].Name != "classify" || len(prof.Steps[1].Cascade) == 0 || !strings.Contains(prof.Source, "ClickHouse") {
		t.Errorf("profile from ClickHouse: %+v", prof)
	}
	for _, format := range []string{"table", "json", "csv"} {
		args := [][]string{
			{"switches", "--workflow", "digits"},
			{"drift", "--workflow", "digits", "--step", "classify", "--reference", "batches:0-200", "--recent", "batches:400-"},
			{"trace", "--workflow", "digits", "b000300"},
		}
		for _, a := range args {
			stdout, stderr, err := run(t, time.Minute, append(a, "--format", format, "--clickhouse", own)...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", a, err, stderr)
			}
			switch format {
			case "json":
				var rows []map[string]any
				if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) == 0 {
					t.Errorf("%v --format json: %v\n%s", a, err, stdout)
				}
			case "csv":
				recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
				if err != nil || len(recs) < 2 {
					t.Errorf("%v --format csv: %v\n%s", a, err, stdout)
				}
			default:
				t.Logf("flexiflow %s\n%s", strings.Join(a, " "), stdout)
			}
		}
	}
	_, stderr, err = run(t, time.Minute, "drift", "--workflow", "digits", "--step", "nope", "--reference", "batches:0-10", "--recent", "batches:10-", "--clickhouse", own)
	if err == nil || !strings.Contains(stderr, "its steps: ") {
		t.Errorf("unknown step: %v %s", err, stderr)
	}
	u, _ := url.Parse(own)
	u.User = url.UserPassword(u.User.Username(), "n0t-the-pw")
	_, stderr, err = run(t, time.Minute, "switches", "--workflow", "digits", "--clickhouse", u.String())
	if err == nil || !strings.Contains(stderr, "login refused") || strings.Contains(stderr, "n0t-the-pw") {
		t.Errorf("wrong password: %v %s", err, stderr)
	}
	_, stderr, err = run(t, time.Minute, "switches", "--workflow", "nope", "--clickhouse", own)
	if err == nil || !strings.Contains(stderr, "workflows with traces: digits") {
		t.Errorf("unknown workflow: %v %s", err, stderr)
	}

	// The password can stay out of the DSN: from a file (a mounted secret)
	// or the environment, the wrong one refused without being echoed.
	real, _ := url.Parse(own)
	if password, ok := real.User.Password(); ok && password != "" {
		u.User = url.User(u.User.Username())
		bare := u.String()
		pwFile := filepath.Join(t.TempDir(), "clickhouse-password")
		if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if stdout, stderr, err := run(t, time.Minute, "switches", "--workflow", "digits", "--clickhouse", bare, "--clickhouse-password-file", pwFile); err != nil || !strings.Contains(stdout, "classify") {
			t.Errorf("password from a file: %v\n%s%s", err, stdout, stderr)
		}
		cmd := exec.Command(binary, "switches", "--workflow", "digits", "--clickhouse", bare)
		cmd.Env = append(os.Environ(), "FLEXIFLOW_CLICKHOUSE_PASSWORD=n0t-the-pw")
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "login refused") || strings.Contains(string(out), "n0t-the-pw") {
			t.Errorf("wrong password from the environment: %v %s", err, out)
		}
	}
}

// clickhouseForCLI returns a DSN of an empty database for the commands.
func clickhouseForCLI(t *testing.T) string {
	t.Helper()
	if dsn := os.Getenv("FLEXIFLOW_CLICKHOUSE_DSN"); dsn != "" {
		ctx := context.Background()
		admin, err := clickhouse.OpenNative(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		db := fmt.Sprintf("flexiflow_cli_%d", time.Now().UnixNano())
		if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); admin.Close() })
		u, _ := url.Parse(dsn)
		u.Path = "/" + db
		return u.String()
	}
	addr := chdbtest.StartHTTP(t, "flexiflow", "flexiflow")
	t.Logf("no FLEXIFLOW_CLICKHOUSE_DSN: running against chDB at %s over HTTP", addr)
	return "http://flexiflow:flexiflow@" + addr + "/default"
}
