package kserve_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real MLServer the tests in this package run against: started by
// deploy/mlserver/mlserver.sh on first use (or found running) and stopped
// again after the package's tests when they started it.
const (
	restURL = "http://127.0.0.1:18080"
	grpcURL = "127.0.0.1:18081"
)

var server struct {
	once    sync.Once
	started bool
	skip    string // why the server is unavailable
	root    string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.started {
		if out, err := exec.Command("bash", filepath.Join(server.root, "deploy/mlserver/mlserver.sh"), "down").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping MLServer: %v\n%s", err, out)
		}
	}
	os.Exit(code)
}

// needServer returns once MLServer answers, or skips the test (fails it
// under CI=true) with the reason and the command that installs it.
func needServer(t testing.TB) {
	t.Helper()
	server.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			server.skip = err.Error()
			return
		}
		server.root = root
		script := filepath.Join(root, "deploy/mlserver/mlserver.sh")
		if exec.Command("bash", script, "status").Run() == nil {
			return // running already: leave it running
		}
		if ready(restURL) {
			return // someone else's MLServer on the test port
		}
		start := time.Now()
		var out bytes.Buffer
		cmd := exec.Command("bash", script, "up")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			server.skip = fmt.Sprintf("could not start MLServer (%v): %s\ninstall and start it with: bash deploy/mlserver/mlserver.sh up", err, strings.TrimSpace(out.String()))
			return
		}
		server.started = true
		fmt.Fprintf(os.Stderr, "MLServer started for the tests in %s: %s\n", time.Since(start).Round(time.Second), strings.TrimSpace(out.String()))
	})
	if server.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MLServer is required under CI: %s", server.skip)
		}
		t.Skip(server.skip)
	}
}

func ready(base string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/v2/health/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// post sends a model-repository request (load/unload) to the server.
func post(t testing.TB, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, restURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "deploy/mlserver/mlserver.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("deploy/mlserver/mlserver.sh not found above the test's directory")
		}
		dir = parent
	}
}
