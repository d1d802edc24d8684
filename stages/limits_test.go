package stages_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/bandit"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// bigInput lets the first step's input topic take records up to 8 MiB, as
// a user's topic might, while every other topic keeps the broker's default.
func bigInput(es *envSetup) {
	es.before = func(t *testing.T, kafka stream.Config, wf *workflow.Workflow) {
		t.Helper()
		cl, err := kgo.NewClient(kafka.ClientOpts()...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		v := strconv.Itoa(8 << 20)
		resp, err := kadm.NewClient(cl).CreateTopics(context.Background(), int32(wf.Partitions), -1,
			map[string]*string{"max.message.bytes": &v}, wf.Steps[0].Topics.In)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// sendBig produces values to the first step's input under one key (so one
// partition, in order), with a client that takes records that large.
func (e *env) sendBig(values ...[]byte) {
	e.t.Helper()
	cl, err := kgo.NewClient(append(e.kafka.ClientOpts(), kgo.ProducerBatchMaxBytes(16<<20))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	for i, v := range values {
		id := fmt.Sprintf("big%d", i)
		e.send(cl, &kgo.Record{Topic: e.wf.Steps[0].Topics.In, Key: []byte("k"), Value: v, Headers: stream.Headers(id, 0, nil, "")})
	}
}

// batchOf encodes n records whose ids are idLen characters of random hex,
// which compression cannot shrink much.
func (e *env) batchOf(id string, n, idLen int) []byte {
	e.t.Helper()
	b := &schemas.Batch{ID: id, Workflow: e.wf.Name, CreatedAtMs: time.Now().UnixMilli()}
	raw := make([]byte, idLen/2)
	for j := 0; j < n; j++ {
		crand.Read(raw)
		b.Records = append(b.Records, models.Record{"id": hex.EncodeToString(raw), "x": float64(j)})
	}
	v, err := e.item.Encode(nil, b)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// TestOversizedRecordsNeverStopAStep sends the three shapes of record that
// used to stall a step forever (its own producer refused the output, the
// transaction aborted, the batch was read again, and every batch behind it
// waited): a valid batch larger than the next topic takes, 5 MB of
// compressible bytes, and 2 MB of garbage. Each must end in the dead-letter
// topic with its reason, size and source, value left out, and the batches
// behind them on the same partition must be delivered. A valid batch of
// about 1 MB (more than the client's default batch limit, less than the
// topic's max.message.bytes) is delivered: the limits follow the topic.
func TestOversizedRecordsNeverStopAStep(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := startEnv(t, b, oneStep("good,bad", 1), true, bigInput)
			oneMB := e.batchOf("onemb", 1900, 520) // ≈1,004,000 bytes
			if n := len(oneMB); n <= 1_000_012 || n >= 1_040_000 {
				t.Fatalf("the 1 MB batch is %d bytes; the test needs it between the client's default limit and the topic's", n)
			}
			tooBig := e.batchOf("toobig", 1900, 700) // ≈1.35 MB
			garbage := make([]byte, 2<<20)
			crand.Read(garbage)
			e.sendBig(oneMB, tooBig, bytes.Repeat([]byte("flexiflow"), 5<<20/9), garbage)
			// Behind them, on the same partition, ordinary batches.
			cl, err := kgo.NewClient(e.kafka.ClientOpts()...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var small []string
			for i := 0; i < 5; i++ {
				id := fmt.Sprintf("small%d", i)
				v := e.batchOf(id, 3, 8)
				e.send(cl, &kgo.Record{Topic: e.wf.Steps[0].Topics.In, Key: []byte("k"), Value: v, Headers: stream.Headers(id, 0, nil, "")})
				small = append(small, id)
			}

			out := e.collect(1+len(small), e.wf.Topics.Out)
			got := map[string]int{}
			for _, r := range out {
				got[header(r, stream.HeaderBatchID)]++ // the key is the input's ("k")
			}
			for _, id := range append([]string{"onemb"}, small...) {
				if got[id] != 1 {
					t.Errorf("batch %s delivered %d times, want once (delivered: %v)", id, got[id], got)
				}
			}

			dlq := e.collect(3, e.wf.Steps[0].Topics.DLQ)
			if len(dlq) != 3 {
				t.Fatalf("%d dead letters, want 3 (too-big batch, compressible bytes, garbage)", len(dlq))
			}
			// Dead letters are keyed by batch id and may sit on different
			// partitions: find each by its batch id header.
			byID := map[string]*kgo.Record{}
			for _, r := range dlq {
				byID[header(r, stream.HeaderBatchID)] = r
			}
			cases := []struct {
				id     string
				bytes  int // the value's size, or 0: more than the topic takes
				reason []string
			}{
				{"toobig", 0, []string{"more than topic " + e.wf.Topics.Out + " takes", "more than retry topic"}},
				{"big2", 5 << 20 / 9 * 9, []string{"could not decode"}},
				{"big3", len(garbage), []string{"could not decode"}},
			}
			for _, c := range cases {
				r := byID[c.id]
				if r == nil {
					t.Errorf("no dead letter for %s (dead letters: %v)", c.id, byID)
					continue
				}
				if v := header(r, stream.HeaderValue); v != "omitted" {
					t.Errorf("%s: %s = %q, want omitted", c.id, stream.HeaderValue, v)
				}
				if len(r.Value) != 0 {
					t.Errorf("%s: the dead letter kept a %d-byte value", c.id, len(r.Value))
				}
				src := header(r, stream.HeaderSource)
				if !strings.HasPrefix(src, e.wf.Steps[0].Topics.In+"/") {
					t.Errorf("%s: source %q does not name the input topic", c.id, src)
				}
				reason := header(r, stream.HeaderError)
				for _, want := range append(c.reason, "is left out: the original is at "+e.wf.Steps[0].Topics.In) {
					if !strings.Contains(reason, want) {
						t.Errorf("%s: reason %q does not contain %q", c.id, reason, want)
					}
				}
				n, _ := strconv.Atoi(header(r, stream.HeaderValueBytes))
				if c.bytes > 0 && n != c.bytes || c.bytes == 0 && n <= 1_048_588 {
					t.Errorf("%s: %s = %d, want %d (0: more than the topic's 1,048,588)", c.id, stream.HeaderValueBytes, n, c.bytes)
				}
			}
		})
	}
}

// orderedLearner ranks models in workflow order (so each batch's attempts
// do not depend on timing) and learns with a real policy underneath, whose
// state the stage saves and rolls back.
type orderedLearner struct {
	inOrder
	bandit.Policy
	observed int
}

func (p *orderedLearner) Rank(dst []int) []int { return p.inOrder.Rank(dst) }
func (p *orderedLearner) Observe(i int, passed bool, cost float64) {
	p.observed++
	p.Policy.Observe(i, passed, cost)
}
func (p *orderedLearner) Estimates(dst []bandit.Estimate) []bandit.Estimate {
	return p.Policy.Estimates(dst)
}
func (p *orderedLearner) MarshalState() ([]byte, error) {
	return p.Policy.(bandit.Stateful).MarshalState()
}
func (p *orderedLearner) RestoreState(b []byte) error {
	return p.Policy.(bandit.Stateful).RestoreState(b)
}

// TestAbortedAttemptsAreNotLearned runs one stream twice. In the first run
// the stage believes the output topic takes 4 MiB, so every batch whose
// output is over the topic's real limit is refused by the broker and its
// transaction aborts (with every other batch of that poll); in the second
// the stage knows the limit and nothing aborts. The policy's estimates must
// be the same: what an aborted transaction attempted is not learned.
func TestAbortedAttemptsAreNotLearned(t *testing.T) {
	const wf = `workflow: t
input_schema: flexiflow.test.Item
schemas: [item.avsc, scored.avsc]
partitions: 1
steps:
  - name: score
    output_schema: flexiflow.test.Scored
    assertions:
      records:
        - expr: output.score >= 0.5
    models:
      - {name: inflate, price_ms: 1}
      - {name: good, price_ms: 2}
`
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			run := func(maxBytes int) ([]bandit.Estimate, stages.Snapshot) {
				inner, err := bandit.New("thompson", 2, bandit.Params{"discount": 1, "overhead_ms": 0}, 1)
				if err != nil {
					t.Fatal(err)
				}
				pol := &orderedLearner{inOrder: inOrder{k: 2}, Policy: inner}
				e := startEnv(t, b, wf, false, func(es *envSetup) {
					es.stageOpts = func(*stages.Step) []stages.Option {
						o := []stages.Option{stages.WithPolicy(pol)}
						if maxBytes > 0 {
							o = append(o, stages.WithMaxMessageBytes(maxBytes))
						}
						return o
					}
				})
				cl, err := kgo.NewClient(e.kafka.ClientOpts()...)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				// 12 batches, every fourth one with records whose inflated
				// output is over 1 MB.
				for i := 0; i < 12; i++ {
					id := fmt.Sprintf("b%02d", i)
					v := e.batchOf(id, 3, 8)
					if i%4 == 1 {
						v = e.batchOf(id, 100, 3200)
					}
					e.send(cl, &kgo.Record{Topic: e.wf.Steps[0].Topics.In, Key: []byte("k"), Value: v, Headers: stream.Headers(id, 0, nil, "")})
				}
				if out := e.collect(12, e.wf.Topics.Out); len(out) != 12 {
					t.Fatalf("%d batches delivered, want 12", len(out))
				}
				if err := e.pipe.Stop(); err != nil {
					t.Fatal(err)
				}
				snap := e.pipe.Snapshots()[0]
				return pol.Estimates(nil), snap
			}
			aborting, snapA := run(4 << 20)
			clean, snapB := run(0)
			if snapA.Aborted == 0 {
				t.Fatalf("no transaction aborted in the first run; the test did not exercise aborts (%+v)", snapA)
			}
			t.Logf("aborted transactions: %d with the wrong limit, %d with the topic's", snapA.Aborted, snapB.Aborted)
			for i := range clean {
				a, c := aborting[i], clean[i]
				if math.Abs(a.Pulls-c.Pulls) > 1e-9 || math.Abs(a.PassProb-c.PassProb) > 1e-9 || math.Abs(a.Cost-c.Cost) > 1e-9 {
					t.Errorf("model %d: estimate %+v after %d aborts, %+v without: aborted attempts were learned", i, a, snapA.Aborted, c)
				}
			}
		})
	}
}
