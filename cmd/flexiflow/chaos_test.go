package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// TestChaos runs the demo workflow as separate stage processes on a
// dedicated real broker and, in one run, while 3,000 batches flow:
// produces a 2 MB record (more than the step's output topics take), kills
// stages with SIGKILL three times, grows a step by a consumer and shrinks it
// back (two rebalances), and stops and restarts the broker. Every batch must
// end exactly once, the large record in the dead-letter topic with its
// value left out, and the policies' final estimates must stay near those
// of a run of the same stream with no faults (aborted work is not learned).
// A policy that panics is TestPanickingPolicyKeepsTheStageRunning
// (stages): the binary has no policy that panics to run here.
func TestChaos(t *testing.T) {
	realKafka(t)
	script, err := filepath.Abs("../../deploy/kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KAFKA_INSTANCE=chaos-test", "KAFKA_PORT=19392", "KAFKA_CONTROLLER_PORT=19393")
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
	brokers := "127.0.0.1:19392"
	const n = 3000

	// The clean run: the same stream, no faults.
	cleanWF, clean := demoWorkflow(t, "clean")
	cleanProcs := []*proc{
		startProc(t, "stage", "--workflow", cleanWF, "--step", "denoise", "--brokers", brokers, "--instance-id", "k"),
		startProc(t, "stage", "--workflow", cleanWF, "--step", "classify", "--brokers", brokers, "--instance-id", "k"),
	}
	if err := <-produceInBackground(t, cleanWF, brokers, n); err != nil {
		t.Fatal(err)
	}
	cc := count(t, brokers, clean, n, 4*time.Minute)
	for _, p := range cleanProcs {
		p.stop(syscall.SIGTERM)
	}

	wf, name := demoWorkflow(t, "chaos")
	d := startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "a")
	c := startProc(t, "stage", "--workflow", wf, "--step", "classify", "--brokers", brokers, "--instance-id", "a")
	stall := watchOutput(t, brokers, name)
	in := name + ".denoise.in"
	allowLarge(t, brokers, in)
	produced := produceInBackground(t, wf, brokers, n)
	for deadline := time.Now().Add(2 * time.Minute); stall.polls.Load() < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no delivery within 2 minutes of the stages starting")
		}
	}

	sendLarge(t, brokers, in)
	for _, victim := range []*proc{d, c, d} {
		time.Sleep(700 * time.Millisecond)
		victim.stop(syscall.SIGKILL)
		time.Sleep(time.Second)
		victim.start()
	}
	extra := startProc(t, "stage", "--workflow", wf, "--step", "denoise", "--brokers", brokers, "--instance-id", "b")
	time.Sleep(3 * time.Second)
	extra.stop(syscall.SIGTERM)
	broker("down")
	time.Sleep(2 * time.Second)
	broker("up")
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	got := count(t, brokers, name, n, 4*time.Minute)
	at := stall.stop()
	large := deadLetter(t, brokers, name+".denoise.dlq", "chaos-large")
	t.Logf("chaos run (2 MB record, 3 SIGKILLs, 2 rebalances, a broker restart): %s longest_stall=%s; clean run: %s",
		got, longestStall(at), cc)
	if got.duplicates != 0 || got.lost != 0 {
		t.Errorf("exactly-once violated under chaos: %s", got)
	}
	switch {
	case large == nil:
		where := "no other output topic either"
		for _, topic := range []string{name + ".classify.dlq", name + ".out"} {
			if deadLetter(t, brokers, topic, "chaos-large") != nil {
				where = "it is on " + topic
			}
		}
		t.Errorf("the 2 MB record is not on %s.denoise.dlq (%s)", name, where)
	case stream.Header(large, stream.HeaderValue) != "omitted" || stream.Header(large, stream.HeaderValueBytes) != strconv.Itoa(2<<20):
		t.Errorf("the 2 MB record's dead letter does not say its value (2097152 bytes) was left out: %v", large.Headers)
	}
	// What a stage learned must be what it committed: attempts cut by a
	// SIGKILL, a rebalance or the broker's restart are not learned, and a
	// restarted stage resumes from the state committed with its last
	// batches. So each model's final pass probability must match the one
	// a fresh policy of the workflow's kind gives after observing the
	// committed attempts, within 0.15: the traced estimate also holds the
	// share of the model's batches later delivered (up to 0.05 off here),
	// and the attempts of several partitions are replayed in the order
	// decided, which around a pass-rate reset is not quite the order
	// committed. With the restore off, the gap is 0.28. The clean run's estimates are reported beside
	// them; they are not compared, because chaos reorders the stream: a
	// stalled partition's backlog of an earlier phase is served late.
	spec, err := workflow.Load(wf)
	if err != nil {
		t.Fatal(err)
	}
	chaosTraces, cleanTraces := stepTraces(t, brokers, name), stepTraces(t, brokers, clean)
	for _, st := range spec.Steps {
		step := st.Name
		chaos, cleanRun := chaosTraces[step], cleanTraces[step]
		for _, run := range []struct {
			name   string
			traces []*schemas.Trace
		}{{"chaos", chaos}, {"clean", cleanRun}} {
			if len(run.traces) == 0 {
				t.Fatalf("%s run: no committed attempt of step %s", run.name, step)
			}
			last, want := committedEvidence(t, run.traces, st.Policy)
			var line []string
			for _, e := range last.Estimates {
				line = append(line, fmt.Sprintf("%s p=%.2f (from its committed attempts %.2f)", e.Model, e.PassProb, want[e.Model]))
				if math.Abs(e.PassProb-want[e.Model]) > 0.15 {
					t.Errorf("%s run, step %s, model %s: the policy's pass probability is %.2f, its committed attempts give %.2f: it learned from attempts that did not commit, or lost some that did",
						run.name, step, e.Model, e.PassProb, want[e.Model])
				}
			}
			t.Logf("%s run, step %s, final estimates: %s", run.name, step, strings.Join(line, ", "))
		}
		if t.Failed() {
			t.Logf("step %s under chaos, committed attempts in the order decided:\n%s", step, attemptTimeline(chaos))
			t.Logf("step %s clean, committed attempts in the order decided:\n%s", step, attemptTimeline(cleanRun))
		}
	}
}

// stepTraces are the committed traces of model attempts of a workflow's
// topics, per step, in the order they were decided (one read of the topic
// for every step).
func stepTraces(t *testing.T, brokers, name string) map[string][]*schemas.Trace {
	t.Helper()
	tc, err := schemas.NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	per := map[string][]*schemas.Trace{}
	eachCommitted(t, brokers, name+".traces", func(r *kgo.Record) {
		if tr, err := tc.Decode(r.Value); err == nil && tr.Model != "" {
			per[tr.Step] = append(per[tr.Step], tr)
		}
	})
	for _, all := range per {
		sort.Slice(all, func(i, j int) bool { return all[i].TsUs < all[j].TsUs })
	}
	return per
}

// committedEvidence returns the last decision traced with estimates, and
// the pass probability per model that a fresh policy as the step's
// workflow configures it gives after observing the attempts decided
// before it, in the order they were decided.
func committedEvidence(t *testing.T, traces []*schemas.Trace, policy workflow.Policy) (*schemas.Trace, map[string]float64) {
	t.Helper()
	var last *schemas.Trace
	for _, tr := range traces {
		if len(tr.Estimates) > 0 {
			last = tr
		}
	}
	if last == nil {
		t.Fatal("no trace with estimates")
	}
	index := map[string]int{}
	for i, e := range last.Estimates {
		index[e.Model] = i
	}
	pol, err := bandit.New(policy.Name, len(index), policy.Params, policy.Seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range traces {
		if tr.TsUs >= last.TsUs {
			break
		}
		if i, ok := index[tr.Model]; ok {
			pol.Observe(i, tr.Verdict == schemas.VerdictPass, float64(tr.LatencyUs)/1000)
		}
	}
	want := map[string]float64{}
	for i, e := range pol.Estimates(nil) {
		want[last.Estimates[i].Model] = e.PassProb
	}
	return last, want
}

// attemptTimeline tells, for every 300 committed attempts in the order
// they were decided, each model's attempts, passes, failures and errors
// (with the most frequent error): what the policy learned from.
func attemptTimeline(all []*schemas.Trace) string {
	var b strings.Builder
	for lo := 0; lo < len(all); lo += 300 {
		hi := min(lo+300, len(all))
		type tally struct{ n, pass, fail, errs int }
		per := map[string]*tally{}
		errs := map[string]int{}
		var lat []int64
		for _, tr := range all[lo:hi] {
			c := per[tr.Model]
			if c == nil {
				c = &tally{}
				per[tr.Model] = c
			}
			c.n++
			lat = append(lat, tr.LatencyUs)
			switch tr.Verdict {
			case schemas.VerdictPass:
				c.pass++
			case schemas.VerdictFail:
				c.fail++
			default:
				c.errs++
				errs[tr.Error]++
			}
		}
		slices.Sort(lat)
		fmt.Fprintf(&b, "  attempts %d-%d (latency median %d µs, max %d µs):", lo, hi-1, lat[len(lat)/2], lat[len(lat)-1])
		models := slices.Sorted(maps.Keys(per))
		for _, m := range models {
			c := per[m]
			fmt.Fprintf(&b, " %s %d (pass %d, fail %d, error %d)", m, c.n, c.pass, c.fail, c.errs)
		}
		worst, most := "", 0
		for e, k := range errs {
			if k > most {
				worst, most = e, k
			}
		}
		if most > 0 {
			fmt.Fprintf(&b, "; most frequent error (%d×): %.200s", most, worst)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// allowLarge lets topic take records up to 8 MiB, as a user's input topic
// might.
func allowLarge(t *testing.T, brokers, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := strconv.Itoa(8 << 20)
	resp, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		_, err = resp.On(topic, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sendLarge produces 2 MB of random bytes to topic.
func sendLarge(t *testing.T, brokers, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerBatchMaxBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := make([]byte, 2<<20)
	crand.Read(v)
	r := &kgo.Record{Topic: topic, Key: []byte("chaos-large"), Value: v, Headers: stream.Headers("chaos-large", 0, nil, "")}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deadLetter returns the committed record of topic whose batch id is id.
func deadLetter(t *testing.T, brokers, topic, id string) *kgo.Record {
	t.Helper()
	var found *kgo.Record
	eachCommitted(t, brokers, topic, func(r *kgo.Record) {
		if stream.Header(r, stream.HeaderBatchID) == id {
			found = r
		}
	})
	return found
}

// eachCommitted calls f for every committed record of topic.
func eachCommitted(t *testing.T, brokers, topic string, f func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	deadline := time.Now().Add(time.Minute)
	for empty := 0; len(left) > 0 && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			f(r)
			if r.Offset >= left[r.Partition]-2 { // the last record may sit before a commit marker
				delete(left, r.Partition)
			}
		})
		if fs.NumRecords() > 0 {
			empty = 0
			continue
		}
		// Nothing in 2 s: what is left is markers of aborted or committed
		// transactions, or the first fetch is slow (a new client's
		// metadata and offsets on a loaded machine, whose stages are still
		// running). One empty poll is not the end: three in a row are.
		if empty++; empty == 3 {
			break
		}
	}
}
