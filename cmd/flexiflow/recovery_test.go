package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// These tests run the real binary as separate OS processes against a real
// Apache Kafka broker, crash and restart them, restart the broker, and
// rebalance a step, and then count every batch id across the workflow's
// output and dead-letter topics: each must be there exactly once.

// realKafka returns the real broker's address, skipping (or, under CI,
// failing) when there is none.
func realKafka(t *testing.T) string {
	t.Helper()
	for _, b := range streamtest.Backends(t) {
		if b.Name == "kafka" {
			return strings.Join(b.Start(t).Brokers, ",")
		}
	}
	t.Skipf("needs a real Kafka broker: set %s (make test starts one with deploy/kafka/kafka.sh)", streamtest.EnvBrokers)
	return ""
}

// demoWorkflow writes the demo workflow under a fresh name, so its topics and
// groups are this test's own.
func demoWorkflow(t *testing.T, prefix string) (path, name string) {
	t.Helper()
	out, _, err := run(t, 30*time.Second, "demo", "--print-workflow")
	if err != nil {
		t.Fatal(err)
	}
	name = streamtest.Unique(prefix)
	path = filepath.Join(t.TempDir(), "wf.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(out, "workflow: digits", "workflow: "+name, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, name
}

// proc is a flexiflow process the test can kill and start again.
type proc struct {
	t    *testing.T
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs bytes.Buffer
}

func startProc(t *testing.T, args ...string) *proc {
	p := &proc{t: t, args: args}
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%v logs (last 3000 bytes):\n%s", args, tail(p.logs.String(), 3000))
		}
	})
	return p
}

func (p *proc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmd = exec.Command(binary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// tally reads the workflow's output and dead-letter topics (read_committed)
// until every produced id has been seen or the deadline passes, and counts.
type tally struct{ produced, delivered, deadLettered, duplicates, lost int }

func (c tally) String() string {
	return fmt.Sprintf("produced=%d delivered=%d dead_lettered=%d duplicates=%d lost=%d", c.produced, c.delivered, c.deadLettered, c.duplicates, c.lost)
}

// watcher reads a workflow's output topic (read_committed) as batches are
// delivered.
type watcher struct {
	polls atomic.Int64 // polls that brought deliveries
	stop  func() []time.Time
}

// watchOutput starts a watcher; its stop ends it and returns when each poll
// brought deliveries, in order.
func watchOutput(t *testing.T, brokers, name string) *watcher {
	t.Helper()
	// The stages create the topic; wait for it, so the first deliveries are
	// seen as they happen, not at the client's next metadata refresh.
	topic := name + ".out"
	cfg := stream.Config{Brokers: strings.Split(brokers, ",")}
	for deadline := time.Now().Add(30 * time.Second); stream.CheckTopics(context.Background(), cfg, topic) != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s was not created within 30s", topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []time.Time)
	w := &watcher{}
	go func() {
		var at []time.Time
		for ctx.Err() == nil {
			if cl.PollFetches(ctx).NumRecords() > 0 {
				at = append(at, time.Now())
				w.polls.Add(1)
			}
		}
		done <- at
	}()
	w.stop = func() []time.Time {
		cancel()
		at := <-done
		cl.Close()
		return at
	}
	return w
}

// longestStall is the longest time between two consecutive deliveries:
// how long output stopped after a crash or an outage.
func longestStall(at []time.Time) time.Duration {
	var d time.Duration
	for i := 1; i < len(at); i++ {
		d = max(d, at[i].Sub(at[i-1]))
	}
	return d.Round(10 * time.Millisecond)
}

func count(t *testing.T, brokers, name string, produced int, wait time.Duration) tally {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ConsumeTopics(name+".out", name+".denoise.dlq", name+".classify.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	var c tally
	deadline := time.Now().Add(wait)
	quietUntil := time.Time{}
	for time.Now().Before(deadline) {
		if len(seen) >= produced {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(3 * time.Second) // let late duplicates show up
			} else if time.Now().After(quietUntil) {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			id := stream.Header(r, stream.HeaderBatchID)
			seen[id]++
			if seen[id] > 1 {
				c.duplicates++
			} else if r.Topic == name+".out" {
				c.delivered++
			} else {
				c.deadLettered++
			}
		})
		cancel()
	}
	c.produced = produced
	for i := 0; i < produced; i++ {
		if seen[fmt.Sprintf("b%06d", i)] == 0 {
			c.lost++
		}
	}
	return c
}

func produceInBackground(t *testing.T, wf, brokers string, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		out, stderr, err := run(t, 5*time.Minute, "produce", "--workflow", wf, "--brokers", brokers, "--batches", fmt.Sprint(n))
		if err != nil {
			err = fmt.Errorf("produce: %v\n%s%s", err, out, stderr)
		}
		done <- err
	}()
	return done
}

// TestCrashRecovery kills stage processes with SIGKILL at random moments
// while 2,000 batches flow, restarts each a second later, and checks
// exactly-once delivery. It reports the longest stall in output: a stage
// that restarts must take its partitions back at once (static membership),
// not after the group has waited out the dead member's session.
func TestCrashRecovery(t *testing.T) {
	brokers := realKafka(t)
	wf, name := demoWorkflow(t, "crash")
	procs := []*proc{
		startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "c"),
		startProc(t, "stage", "--workflow", wf, "--step", "classify", "--brokers", brokers, "--instance-id", "c"),
	}
	const n = 2000
	stall := watchOutput(t, brokers, name)
	produced := produceInBackground(t, wf, brokers, n)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 6
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		victim := procs[rng.IntN(len(procs))]
		victim.stop(syscall.SIGKILL)
		time.Sleep(time.Second)
		victim.start()
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	c := count(t, brokers, name, n, 4*time.Minute)
	t.Logf("crash test (%d SIGKILLs, each stage restarted 1 s later): %s longest_stall=%s", kills, c, longestStall(stall.stop()))
	if c.duplicates != 0 || c.lost != 0 {
		t.Errorf("exactly-once violated: %s", c)
	}
}

// TestBrokerRestart stops and starts a dedicated real broker mid-run; the
// stages reconnect and finish with nothing lost or duplicated.
func TestBrokerRestart(t *testing.T) {
	realKafka(t) // a real broker must be available in this run
	script, err := filepath.Abs("../../deploy/kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KAFKA_INSTANCE=restart-test", "KAFKA_PORT=19292", "KAFKA_CONTROLLER_PORT=19293")
	broker := func(action string) {
		t.Helper()
		cmd := exec.Command("bash", script, action)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kafka.sh %s: %v\n%s", action, err, out)
		}
	}
	broker("up")
	t.Cleanup(func() { broker("down") })
	brokers := "127.0.0.1:19292"
	wf, name := demoWorkflow(t, "restart")
	startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "r")
	startProc(t, "stage", "--workflow", wf, "--step", "classify", "--brokers", brokers, "--instance-id", "r")
	const n = 3000 // more than the stages finish while the broker shuts down
	stall := watchOutput(t, brokers, name)
	if err := <-produceInBackground(t, wf, brokers, n); err != nil {
		t.Fatal(err)
	}
	// Restart the broker only once the stages deliver: a restart before
	// they have joined would measure their start, not the outage.
	for deadline := time.Now().Add(2 * time.Minute); stall.polls.Load() < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no delivery within 2 minutes of the stages starting")
		}
	}
	if pre := count(t, brokers, name, n, time.Second); pre.delivered+pre.deadLettered >= n {
		t.Fatalf("every batch finished before the broker restart; the test proves nothing: %s", pre)
	}
	broker("down")
	time.Sleep(2 * time.Second)
	broker("up")
	back := time.Now()
	c := count(t, brokers, name, n, 4*time.Minute)
	at := stall.stop()
	after := slices.IndexFunc(at, func(a time.Time) bool { return a.After(back) })
	if after < 0 {
		t.Fatalf("nothing was delivered after the broker came back; the test proves nothing: %s", c)
	}
	t.Logf("broker restart: %s output resumed %s after the broker was back, longest_stall=%s",
		c, at[after].Sub(back).Round(10*time.Millisecond), longestStall(at))
	if c.duplicates != 0 || c.lost != 0 {
		t.Errorf("broker restart lost or duplicated batches: %s", c)
	}
}

// TestRebalance grows a step from one consumer to three mid-run and shrinks
// it back; partitions spread across the members and every batch ends once.
func TestRebalance(t *testing.T) {
	brokers := realKafka(t)
	wf, name := demoWorkflow(t, "rebalance")
	startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "d1")
	startProc(t, "stage", "--workflow", wf, "--step", "classify", "--brokers", brokers, "--instance-id", "c1")
	const n = 1500
	produced := produceInBackground(t, wf, brokers, n)
	time.Sleep(time.Second)
	extra := []*proc{
		startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "d2"),
		startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "d3"),
	}
	spread := waitForMembers(t, brokers, name+".denoise", 3, 30*time.Second)
	for _, p := range extra {
		p.stop(syscall.SIGTERM)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	c := count(t, brokers, name, n, 4*time.Minute)
	t.Logf("rebalance 1→3→1 consumers, partitions per member at 3: %v; %s", spread, c)
	for _, k := range spread {
		if k == 0 {
			t.Errorf("a member got no partitions: %v", spread)
		}
	}
	if c.duplicates != 0 || c.lost != 0 {
		t.Errorf("rebalance lost or duplicated batches: %s", c)
	}
}

// waitForMembers waits until group has want members with assignments and
// returns how many partitions each holds.
func waitForMembers(t *testing.T, brokers, group string, want int, d time.Duration) []int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(d)
	var last []int
	for time.Now().Before(deadline) {
		groups, err := adm.DescribeGroups(context.Background(), group)
		if err == nil {
			g := groups[group]
			last = last[:0]
			for _, m := range g.Members {
				n := 0
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range a.Topics {
						n += len(tp.Partitions)
					}
				}
				last = append(last, n)
			}
			if g.State == "Stable" && len(last) == want {
				total := 0
				for _, n := range last {
					total += n
				}
				if total == 9 { // .in, .retry and .feedback, 3 partitions each
					return last
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s did not reach %d members with all 9 partitions assigned within %s (last: %v)", group, want, d, last)
	return nil
}

// TestSigtermInAnyState sends SIGTERM to a stage in the states where a stop
// used to take long or fail: 0.2 s after it starts (still connecting), as
// soon as a stage restarted after a SIGKILL mid-stream has started its
// session (joining while its predecessor's transaction is open), and
// mid-stream. Each time it must exit with status 0, within Kubernetes'
// default 30 s grace period, and say it stopped.
func TestSigtermInAnyState(t *testing.T) {
	brokers := realKafka(t)
	wf, _ := demoWorkflow(t, "sigterm")
	args := []string{"stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "s", "--progress-every", "200ms"}
	launch := func() (*exec.Cmd, *syncBuffer) {
		t.Helper()
		logs := &syncBuffer{}
		p := exec.Command(binary, args...)
		p.Stdout, p.Stderr = logs, logs
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		return p, logs
	}
	waitFor := func(logs *syncBuffer, re string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !regexp.MustCompile(re).MatchString(logs.String()); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the stage never logged %q:\n%s", re, tail(logs.String(), 2000))
			}
		}
	}
	stop := func(what string, p *exec.Cmd, logs *syncBuffer) {
		t.Helper()
		start := time.Now()
		_ = p.Process.Signal(syscall.SIGTERM)
		err := p.Wait()
		took := time.Since(start)
		t.Logf("SIGTERM %s: exited in %s (%v)", what, took.Round(time.Millisecond), err)
		if err != nil {
			t.Errorf("SIGTERM %s: exit %v, want 0\n%s", what, err, tail(logs.String(), 2000))
		}
		if took > 25*time.Second {
			t.Errorf("SIGTERM %s: took %s, more than a 30 s grace period allows", what, took)
		}
		if !strings.Contains(logs.String(), "stopped") {
			t.Errorf("SIGTERM %s: the log does not say it stopped\n%s", what, tail(logs.String(), 2000))
		}
	}

	p, logs := launch()
	time.Sleep(200 * time.Millisecond)
	stop("0.2 s after start", p, logs)

	produced := produceInBackground(t, wf, brokers, 3000)
	p, logs = launch()
	waitFor(logs, `progress.*"batches": [1-9]`)
	stop("mid-stream", p, logs)

	p, logs = launch()
	waitFor(logs, `progress.*"batches": [1-9]`)
	_ = p.Process.Kill()
	_ = p.Wait()
	p, logs = launch()
	waitFor(logs, "stage started")
	stop("as a stage restarted after a SIGKILL starts its session", p, logs)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
