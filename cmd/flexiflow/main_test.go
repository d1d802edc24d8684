package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/stream"
)

var binary string

// TestMain builds the real binary once; the tests run it as users do.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flexiflow-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flexiflow")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building flexiflow: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestBadInputFailsClearly checks each user mistake gives a non-zero exit
// and a message naming the file, line or address and what to do.
func TestBadInputFailsClearly(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badYAML := write("bad.yaml", "workflow: w\nsteps: [\n")
	badCEL := write("cel.yaml", `workflow: w
input_schema: flexiflow.demo.DigitImage
steps:
  - name: s
    output_schema: flexiflow.demo.DigitPrediction
    models: [{name: centroid, builtin: digits.centroid}]
    assertions:
      records:
        - name: conf
          expr: output.confidence >=
`)
	unknownModel := write("model.yaml", `workflow: w
input_schema: flexiflow.demo.DigitImage
steps:
  - name: s
    output_schema: flexiflow.demo.DigitPrediction
    models: [{name: svm, builtin: digits.svm}]
`)
	// A port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"malformed yaml", []string{"run", badYAML}, []string{"bad.yaml", "not valid YAML"}},
		{"bad CEL", []string{"run", badCEL}, []string{"cel.yaml:10:", "assertion \"conf\" does not compile", "Syntax error"}},
		{"unknown model", []string{"run", unknownModel}, []string{"model.yaml:6:", "no model kind \"digits.svm\"", "known kinds: cel, digits.centroid, digits.knn"}},
		{"missing file", []string{"run", filepath.Join(dir, "nope.yaml")}, []string{"reading workflow", "no such file"}},
		{"unreachable broker", []string{"stage", "--step", "classify", "--brokers", dead, "--connect-timeout", "2s"}, []string{"cannot reach Kafka at " + dead, "check the address"}},
		{"unknown step", []string{"stage", "--step", "nope", "--brokers", dead, "--connect-timeout", "1s"}, []string{"workflow \"digits\" has no step \"nope\"; its steps are: denoise, classify"}},
		{"missing required flag", []string{"stage", "--brokers", dead}, []string{"required flag(s) \"step\" not set"}},
		{"bad log level", []string{"demo", "--log-level", "loud"}, []string{"--log-level \"loud\""}},
		{"bad batches", []string{"demo", "--batches", "0"}, []string{"--batches must be at least 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, err := run(t, 30*time.Second, c.args...)
			if err == nil {
				t.Fatalf("exit status 0 for %v", c.args)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestHelpTeaches(t *testing.T) {
	out, _, err := run(t, 10*time.Second, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"demo", "run", "stage", "produce", "broker", "flexiflow demo"} {
		if !strings.Contains(out, w) {
			t.Errorf("--help does not mention %q", w)
		}
	}
	out, _, _ = run(t, 10*time.Second, "demo", "--print-workflow")
	if !strings.Contains(out, "workflow: digits") || strings.Contains(out, "ROUGHNESS_MAX") {
		t.Errorf("--print-workflow did not print the finished demo workflow:\n%s", out)
	}
}

// TestIndependentProcesses runs the embedded broker, each step and the
// producer as separate OS processes, as a deployment would, and checks that
// every produced batch ends in the output or a dead-letter topic.
func TestIndependentProcesses(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, binary, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%v stderr:\n%s", args, stderr.String())
			}
		})
		return cmd
	}
	start("broker", "--listen", addr)
	kafka := stream.Config{Brokers: []string{addr}}
	waitFor(t, 10*time.Second, func() bool {
		return stream.Ping(context.Background(), stream.Config{Brokers: kafka.Brokers, ConnectTimeout: time.Second}) == nil
	})
	start("stage", "--step", "denoise", "--brokers", addr)
	start("stage", "--step", "classify", "--brokers", addr)
	const n = 60
	if out, stderr, err := run(t, 60*time.Second, "produce", "--brokers", addr, "--batches", fmt.Sprint(n)); err != nil {
		t.Fatalf("produce: %v\n%s%s", err, out, stderr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("digits.out", "digits.denoise.dlq", "digits.classify.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[stream.Header(r, stream.HeaderBatchID)]++ })
		pcancel()
	}
	dups := 0
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	if len(seen) != n || dups != 0 {
		t.Errorf("want each of %d batches exactly once in out or a dlq; saw %d distinct, %d duplicated", n, len(seen), dups)
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", d)
}

// TestDemoSummaryJSON runs a short demo and checks the JSON summary's shape
// and bookkeeping.
func TestDemoSummaryJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	out, stderr, err := run(t, 5*time.Minute, "demo", "--batches", "200", "--summary-json", path)
	if err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Produced     int `json:"produced"`
		Delivered    int `json:"delivered"`
		DeadLettered int `json:"dead_lettered"`
		Lost         int `json:"lost"`
		Duplicates   int `json:"duplicates"`
		Steps        []struct {
			Name     string            `json:"name"`
			Switches []json.RawMessage `json:"switches"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Produced != 200 || s.Delivered+s.DeadLettered != 200 || s.Lost != 0 || s.Duplicates != 0 {
		t.Errorf("summary bookkeeping: %+v", s)
	}
	if len(s.Steps) != 2 || s.Steps[0].Switches == nil {
		t.Errorf("want 2 steps each with a switches list, got %s", b)
	}
	if !strings.Contains(out, "step classify") || !strings.Contains(out, "produced") {
		t.Errorf("demo output lacks the summary table:\n%s", out)
	}
}

// TestRunWorkflowFile runs a user's workflow file with `flexiflow run` on its
// embedded broker, feeds it with `flexiflow produce`, and checks the batches
// come out, then that SIGTERM stops it cleanly.
func TestRunWorkflowFile(t *testing.T) {
	out, _, err := run(t, 30*time.Second, "demo", "--print-workflow")
	if err != nil {
		t.Fatal(err)
	}
	wf := filepath.Join(t.TempDir(), "digits.yaml")
	if err := os.WriteFile(wf, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	metricsAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(binary, "run", wf, "--progress-every", "1s", "--metrics-addr", metricsAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 4096)
	n, _ := stdout.Read(line)
	m := regexp.MustCompile(`running on \[([0-9.:]+)\]`).FindSubmatch(line[:n])
	if m == nil {
		t.Fatalf("run did not print its broker address: %q\n%s", line[:n], stderr.String())
	}
	addr := string(m[1])
	const batches = 40
	if o, e, err := run(t, time.Minute, "produce", "--workflow", wf, "--brokers", addr, "--batches", fmt.Sprint(batches)); err != nil {
		t.Fatalf("produce: %v\n%s%s", err, o, e)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("digits.out", "digits.denoise.dlq", "digits.classify.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < batches && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[stream.Header(r, stream.HeaderBatchID)] = true })
		cancel()
	}
	if len(seen) != batches {
		t.Errorf("%d of %d batches came out of the workflow", len(seen), batches)
	}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `flexiflow_batches_total{outcome="next",step="classify"}`,
	} {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
		if path == "/metrics" {
			for _, series := range []string{"flexiflow_attempts_total{", "flexiflow_attempt_latency_seconds_bucket{", "flexiflow_bandit_pass_probability{", "flexiflow_leader{", "flexiflow_assigned_partitions{", "flexiflow_consumer_lag{"} {
				if !strings.Contains(string(body), series) {
					t.Errorf("/metrics lacks %s", series)
				}
			}
		}
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("run did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
	}
	t.Logf("run stopped %.2fs after SIGTERM", time.Since(start).Seconds())
}
