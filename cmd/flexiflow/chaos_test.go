package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/schemas"
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
	for _, step := range []string{"denoise", "classify"} {
		a, served := finalEstimates(t, brokers, name, step)
		b, cleanServed := finalEstimates(t, brokers, clean, step)
		// Only the model both runs rank first at the end has an estimate
		// of the same batches in both. One the policy moved away from holds an
		// estimate of the batches just before it left, which differs
		// between two runs by when it left (a storm's first batches or a
		// speckle's last), not by what chaos did.
		var line []string
		compared := 0
		for m, e := range a {
			line = append(line, fmt.Sprintf("%s p=%.2f pulls=%.0f (clean %.2f, %.0f)", m, e.PassProb, e.Pulls, b[m].PassProb, b[m].Pulls))
			if m != served || m != cleanServed {
				continue
			}
			compared++
			if math.Abs(e.PassProb-b[m].PassProb) > 0.3 {
				t.Errorf("step %s model %s: pass probability %.2f under chaos, %.2f in the clean run", step, m, e.PassProb, b[m].PassProb)
			}
		}
		if compared == 0 {
			t.Errorf("step %s: the runs end with different leaders (%s under chaos, %s clean): %v", step, served, cleanServed, line)
		}
		sort.Strings(line)
		t.Logf("step %s final estimates: %s", step, strings.Join(line, ", "))
	}
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

// finalEstimates are a step's policy estimates at its last traced decision,
// and the model they rank first (the least score the stage traced).
func finalEstimates(t *testing.T, brokers, name, step string) (map[string]schemas.Estimate, string) {
	t.Helper()
	tc, err := schemas.NewTraceCodec()
	if err != nil {
		t.Fatal(err)
	}
	var last *schemas.Trace
	eachCommitted(t, brokers, name+".traces", func(r *kgo.Record) {
		tr, err := tc.Decode(r.Value)
		if err != nil || tr.Step != step || len(tr.Estimates) == 0 {
			return
		}
		if last == nil || tr.TsUs > last.TsUs {
			last = tr
		}
	})
	if last == nil {
		t.Fatalf("no trace with estimates for step %s of %s", step, name)
	}
	out := map[string]schemas.Estimate{}
	for _, e := range last.Estimates {
		out[e.Model] = e
	}
	leader, best := "", math.Inf(1)
	for _, e := range last.Estimates {
		if e.Score < best {
			leader, best = e.Model, e.Score
		}
	}
	return out, leader
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
