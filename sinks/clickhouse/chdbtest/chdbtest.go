// Package chdbtest gives tests the ClickHouse engine: chDB, installed by
// deploy/clickhouse/chdb.sh into a virtualenv, driven through the bridges in
// deploy/clickhouse (chdb_run.py for statements and rows as JSON lines,
// chdb_http.py for a ClickHouse HTTP endpoint that clickhouse-go/v2 talks
// to).
//
// When chDB is not installed, tests skip with the reason and the command
// that installs it; under CI (CI=true) they fail instead.
package chdbtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvPython names the Python interpreter with chDB installed.
const EnvPython = "FLEXIFLOW_CHDB_PYTHON"

// Root is the repository root, found from the test's working directory (a
// package directory) by walking up to go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Python finds the interpreter with chDB, or skips (fails under CI).
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv(EnvPython)
	if py == "" {
		py = filepath.Join(Root(t), ".cache/chdb/venv/bin/python")
	}
	if _, err := os.Stat(py); err != nil {
		msg := fmt.Sprintf("chDB is not installed (no %s; set %s or run: bash deploy/clickhouse/chdb.sh)", py, EnvPython)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — under CI the chDB tests must run")
		}
		t.Skip(msg)
	}
	return py
}

// Script returns the path of one of deploy/clickhouse's bridges.
func Script(t testing.TB, name string) string {
	return filepath.Join(Root(t), "deploy/clickhouse", name)
}

// StartHTTP starts chdb_http.py on a fresh data directory, accepting user
// and password, and returns its host:port; the test's cleanup stops it.
func StartHTTP(t testing.TB, user, password string) string {
	t.Helper()
	cmd := exec.Command(Python(t), Script(t, "chdb_http.py"), t.TempDir(), user, password)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the chDB HTTP bridge: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("chDB HTTP bridge did not start: %q %v", line, err)
	}
	return addr
}
