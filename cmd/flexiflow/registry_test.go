package main

import (
	"context"
	be "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/schemas/registry"
	"github.com/flexiflow/flexiflow/schemas/registry/registrytest"
	"github.com/flexiflow/flexiflow/stages/edge"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/pipeline"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// digitImageV2 is the demo's input schema one version ahead, as a
// producer that upgraded first would write it: a field added with a
// default, in the producer's own namespace.
const digitImageV2 = `{"type":"record","name":"DigitImage","namespace":"camera.v2","fields":[
 {"name":"id","type":"string"},
 {"name":"label","type":"int"},
 {"name":"pixels","type":{"type":"array","items":"double"}},
 {"name":"camera","type":"string","default":"cam0"}]}`

// demoWithEdges writes the demo workflow, renamed, with a source and a
// sink of format, and returns its path.
func demoWithEdges(t *testing.T, name, format string, includeInput bool) string {
	t.Helper()
	y := strings.Replace(string(demo.WorkflowYAML()), "workflow: digits\n", "workflow: "+name+"\n", 1)
	if i := strings.Index(y, "\nsource:"); i >= 0 {
		y = y[:i] // the demo's own source and sink, replaced below
	}
	y += fmt.Sprintf("\nsource: {topic: %s.events, format: %s, batch: {max_records: 32, linger: 50ms}}\nsink: {topic: %s.results, format: %s, include_input: %v}\n", name, format, name, format, includeInput)
	path := filepath.Join(t.TempDir(), "workflow.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAccountingWithRegistry sends 10,000 JSON events and 10,000
// Confluent Avro events (framed with a writer schema one version ahead of
// the workflow's, fetched from the real registry) through the demo
// workflow, on the embedded broker and on real Kafka, with bad events
// among them. Every event id must come out exactly once across the sink,
// the source's dead-letter topic and the steps' dead-letter topics; sink
// records keep the event's key and headers, and within each batch the
// events keep their order.
func TestAccountingWithRegistry(t *testing.T) {
	ds, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range streamtest.Backends(t) {
		for _, format := range []string{"json", "confluent-avro"} {
			t.Run(backend.Name+"/"+format, func(t *testing.T) {
				kafka := backend.Start(t)
				name := streamtest.Unique("acct")
				// The JSON sink writes input and output together.
				includeInput := format == "json"
				l, err := compile(demoWithEdges(t, name, format, includeInput), zap.NewNop())
				if err != nil {
					t.Fatal(err)
				}
				// Only the Confluent run needs the registry; the JSON run
				// goes on without one.
				var reg *registry.Client
				opts := []pipeline.Opt{pipeline.CreateTopics(0), pipeline.WithEdges()}
				if format == "confluent-avro" {
					if reg, err = registry.New(registry.Config{URL: registrytest.URL(t)}); err != nil {
						t.Fatal(err)
					}
					opts = append(opts, pipeline.WithRegistry(reg))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				var encode func(id string, img digits.Image) []byte
				if format == "json" {
					encode = func(id string, img digits.Image) []byte {
						b, _ := json.Marshal(map[string]any{"id": id, "label": img.Label, "pixels": img.Pixels[:]})
						return b
					}
				} else {
					subject := l.wf.Source.Topic + "-value"
					if _, err := reg.Register(ctx, subject, l.steps[0].In.RecordSchema); err != nil {
						t.Fatal(err)
					}
					v2, err := reg.Register(ctx, subject, digitImageV2)
					if err != nil {
						t.Fatal(err)
					}
					codec, err := goavro.NewCodec(digitImageV2)
					if err != nil {
						t.Fatal(err)
					}
					encode = func(id string, img digits.Image) []byte {
						b := make([]byte, 5, 600)
						be.BigEndian.PutUint32(b[1:], uint32(v2))
						px := make([]any, len(img.Pixels))
						for i, p := range img.Pixels {
							px[i] = p
						}
						b, err := codec.BinaryFromNative(b, map[string]any{"id": id, "label": int32(img.Label), "pixels": px, "camera": "cam" + id[len(id)-1:]})
						if err != nil {
							t.Fatal(err)
						}
						return b
					}
				}
				pipe, err := pipeline.Start(ctx, l.steps, kafka, opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer pipe.Stop()

				const n = 10000
				cl, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ProducerLinger(5*time.Millisecond))...)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				test := ds.Test()
				badEvery := 997 // 10 bad events, each unreadable
				wantBad := map[string]bool{}
				recs := make([]*kgo.Record, 0, n)
				for i := 0; i < n; i++ {
					id := fmt.Sprintf("e%05d", i)
					dev := fmt.Sprintf("dev%02d", i%25)
					v := encode(id, test[i%len(test)])
					if i%badEvery == 3 {
						v, wantBad[id] = v[:len(v)/2], true // truncated: not JSON, or a short Avro body
					}
					recs = append(recs, &kgo.Record{Topic: l.wf.Source.Topic, Key: []byte(dev), Value: v, Headers: []kgo.RecordHeader{
						{Key: "event-id", Value: []byte(id)}, {Key: "seq", Value: []byte(strconv.Itoa(i))},
						{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))}}})
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}

				topics := []string{l.wf.Sink.Topic, l.wf.Source.DLQ}
				for _, s := range l.wf.Steps {
					topics = append(topics, s.Topics.DLQ)
				}
				rd, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics(topics...),
					kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
				if err != nil {
					t.Fatal(err)
				}
				defer rd.Close()
				sinkCodec, err := l.sinkCodecForTest(reg)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]int{}
				lastInBatch := map[string]int{} // batch id -> last seq delivered
				where := map[string]int{}
				total := 0
				for total < n && ctx.Err() == nil {
					rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
						switch r.Topic {
						case l.wf.Sink.Topic:
							where["sink"]++
							id := stream.Header(r, "event-id")
							rec, err := sinkCodec.Decode(r.Value)
							if err != nil {
								t.Errorf("sink record for %s: %v", id, err)
								return
							}
							got := rec
							if includeInput {
								v := sinkCodec.JSONValue(rec).(map[string]any)
								in, _ := v["input"].(map[string]any)
								got, _ = v["output"].(map[string]any)
								if in == nil || in["id"] != id || len(in["pixels"].([]any)) != 64 {
									t.Errorf("sink record for %s: input %v", id, v["input"])
								}
							}
							if got["id"] != id {
								t.Errorf("sink record for %s: %v", id, got)
							}
							seq, _ := strconv.Atoi(stream.Header(r, "seq"))
							if prev, ok := lastInBatch[stream.Header(r, stream.HeaderBatchID)]; ok && seq < prev {
								t.Errorf("sink: event %d after %d within batch %s", seq, prev, stream.Header(r, stream.HeaderBatchID))
							}
							lastInBatch[stream.Header(r, stream.HeaderBatchID)] = seq
							if string(r.Key) != fmt.Sprintf("dev%02d", seq%25) || stream.Header(r, "traceparent") == "" || stream.Header(r, stream.HeaderSource) == "" || stream.Header(r, stream.HeaderModels) == "" {
								t.Errorf("sink record %s lost its key or headers: key %q, headers %v", id, r.Key, r.Headers)
							}
							seen[id]++
							total++
						case l.wf.Source.DLQ:
							where["source.dlq"]++
							id := stream.Header(r, "event-id")
							if !wantBad[id] {
								t.Errorf("good event %s was dead-lettered at the source: %s", id, stream.Header(r, stream.HeaderError))
							}
							seen[id]++
							total++
						default: // a step's dead letter: a whole batch
							where[r.Topic]++
							codec := l.stepInCodec(r.Topic)
							b, err := codec.Decode(r.Value)
							if err != nil {
								t.Errorf("dead letter on %s: %v", r.Topic, err)
								return
							}
							last := -1
							for i, ev := range b.Events {
								for _, h := range ev.Headers {
									if h.Key == "event-id" {
										seen[string(h.Value)]++
										total++
									}
									if h.Key == "seq" {
										s, _ := strconv.Atoi(string(h.Value))
										if s < last {
											t.Errorf("dead batch %s: event %d out of order", b.ID, i)
										}
										last = s
									}
								}
							}
						}
					})
				}
				missing, dup := 0, 0
				for i := 0; i < n; i++ {
					switch c := seen[fmt.Sprintf("e%05d", i)]; {
					case c == 0:
						missing++
					case c > 1:
						dup++
					}
				}
				t.Logf("%d events: %v (ingest: %d batches)", n, where, pipe.Ingest.Batches.Load())
				if missing != 0 || dup != 0 {
					t.Fatalf("%d events lost, %d duplicated", missing, dup)
				}
				if where["source.dlq"] != len(wantBad) {
					t.Errorf("%d events on the source DLQ, want the %d bad ones", where["source.dlq"], len(wantBad))
				}
				if where["sink"] < n/2 {
					t.Errorf("only %d of %d events reached the sink", where["sink"], n)
				}
			})
		}
	}
}

// sinkCodecForTest decodes the workflow's sink records.
func (l *loaded) sinkCodecForTest(reg *registry.Client) (*event.Codec, error) {
	var r event.Registry
	if reg != nil {
		r = reg
	}
	return edge.SinkCodec(l.wf.Sink, l.steps[0].In.RecordSchema, l.steps[len(l.steps)-1].Out.RecordSchema, r)
}

// stepInCodec is the input codec of the step whose dead-letter topic is topic.
func (l *loaded) stepInCodec(topic string) *schemas.BatchCodec {
	for _, s := range l.steps {
		if s.Spec.Topics.DLQ == topic {
			return s.In
		}
	}
	return l.steps[0].In
}

// registryProxy forwards TCP connections to a real registry until it is
// stopped, and refuses them while stopped: a registry that goes away and
// comes back, with its schemas kept.
type registryProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *registryProxy) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.addr, p.ln = ln.Addr().String(), ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

func (p *registryProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns { // kept-alive connections go too
		_ = c.Close()
	}
	p.conns = nil
}

// TestRegistryDownPausesIngest: with the registry unreachable, ingest
// dead-letters none of the healthy Confluent events; it waits, and when the
// registry answers again every event reaches the sink once.
func TestRegistryDownPausesIngest(t *testing.T) {
	url := registrytest.URL(t)
	target := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	path := ""
	if i := strings.Index(target, "/"); i >= 0 {
		target, path = target[:i], target[i:]
	}
	proxy := &registryProxy{addr: "127.0.0.1:0", target: target}
	proxy.start(t)
	defer proxy.stop()

	b, err := stream.StartEmbedded("127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kafka := stream.Config{Brokers: b.Addrs()}
	name := streamtest.Unique("regdown")
	l, err := compile(demoWithEdges(t, name, "confluent-avro", false), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{URL: "http://" + proxy.addr + path, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := reg.Register(ctx, l.wf.Source.Topic+"-value", l.steps[0].In.RecordSchema)
	if err != nil {
		t.Fatal(err)
	}
	// The sink registers its schema while the registry is up; then it goes.
	pipe, err := pipeline.Start(ctx, l.steps, kafka, pipeline.CreateTopics(0), pipeline.WithEdges(), pipeline.WithRegistry(freshClient(t, "http://"+proxy.addr+path)))
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Stop()
	time.Sleep(2 * time.Second)
	proxy.stop()

	ds, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(l.steps[0].In.RecordSchema)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kafka.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 200
	for i := 0; i < n; i++ {
		img := ds.Test()[i]
		px := make([]any, len(img.Pixels))
		for j, p := range img.Pixels {
			px[j] = p
		}
		v := make([]byte, 5)
		be.BigEndian.PutUint32(v[1:], uint32(id))
		v, err = codec.BinaryFromNative(v, map[string]any{"id": fmt.Sprintf("e%03d", i), "label": int32(img.Label), "pixels": px})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: l.wf.Source.Topic, Key: []byte(strconv.Itoa(i % 7)), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second)
	if got, dead := pipe.Ingest.Events.Load(), pipe.Ingest.DeadLetters.Load(); got != 0 || dead != 0 {
		t.Fatalf("with the registry down, ingest took %d events and dead-lettered %d; want it paused", got, dead)
	}
	proxy.start(t)
	deadline := time.Now().Add(time.Minute)
	for pipe.Ingest.Events.Load() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got, dead := pipe.Ingest.Events.Load(), pipe.Ingest.DeadLetters.Load(); got != n || dead != 0 {
		t.Fatalf("after the registry came back: %d of %d events ingested, %d dead-lettered", got, n, dead)
	}
	// And each reaches the sink once.
	for time.Now().Before(deadline) && pipe.Egress.Events.Load() < n {
		time.Sleep(100 * time.Millisecond)
	}
	recs, err := stream.ReadCommitted(ctx, kafka, l.wf.Sink.Topic)
	if err != nil {
		t.Fatal(err)
	}
	sinkCodec, err := l.sinkCodecForTest(reg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[any]int{}
	for _, r := range recs {
		rec, err := sinkCodec.Decode(r.Value)
		if err != nil {
			t.Fatalf("sink record: %v", err)
		}
		seen[rec["id"]]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("e%03d", i)]; c != 1 {
			t.Errorf("event e%03d reached the sink %d times, want once", i, c)
		}
	}
}

func freshClient(t *testing.T, url string) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Config{URL: url, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
