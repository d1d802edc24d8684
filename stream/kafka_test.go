package stream_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

func TestTopics(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Start(t)
			ctx := context.Background()
			a, c := streamtest.Unique("topic-a"), streamtest.Unique("topic-c")
			err := stream.CheckTopics(ctx, cfg, a, c)
			if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), "--create-topics") {
				t.Fatalf("missing topics: got %v", err)
			}
			if err := stream.EnsureTopics(ctx, cfg, 2, a, c); err != nil {
				t.Fatal(err)
			}
			if err := stream.EnsureTopics(ctx, cfg, 2, a); err != nil {
				t.Errorf("creating an existing topic again must succeed: %v", err)
			}
			if err := stream.CheckTopics(ctx, cfg, a, c); err != nil {
				t.Errorf("topics just created: %v", err)
			}
		})
	}
}

// Once EnsureTopics returns, every partition of the new topics takes
// records at once: a producer that gives up at the first
// UNKNOWN_TOPIC_OR_PARTITION succeeds.
func TestEnsureTopicsReturnsWhenTopicsTakeRecords(t *testing.T) {
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Start(t)
			ctx := context.Background()
			topics := []string{streamtest.Unique("ready-a"), streamtest.Unique("ready-b")}
			if err := stream.EnsureTopics(ctx, cfg, 3, topics...); err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.UnknownTopicRetries(0), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for _, topic := range topics {
				for p := range int32(3) {
					if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
						t.Errorf("%s/%d right after EnsureTopics: %v", topic, p, err)
					}
				}
			}
		})
	}
}

func TestPingUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	err := stream.Ping(context.Background(), stream.Config{Brokers: []string{addr}, ConnectTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka at "+addr) {
		t.Errorf("got %v", err)
	}
	if err := stream.Ping(context.Background(), stream.Config{}); err == nil || !strings.Contains(err.Error(), "--brokers") {
		t.Errorf("no brokers: got %v", err)
	}
}

func TestEmbeddedListenAddress(t *testing.T) {
	if _, err := stream.StartEmbedded("nonsense", 1); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Errorf("bad address: got %v", err)
	}
	b, err := stream.StartEmbedded("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := stream.Ping(context.Background(), stream.Config{Brokers: b.Addrs()}); err != nil {
		t.Errorf("embedded broker does not answer: %v", err)
	}
}

func TestHeaders(t *testing.T) {
	r := &kgo.Record{Headers: stream.Headers("b1", 2, []string{"a", "b"}, "why")}
	for k, want := range map[string]string{stream.HeaderBatchID: "b1", stream.HeaderAttempt: "2", stream.HeaderTried: "a,b", stream.HeaderError: "why"} {
		if got := stream.Header(r, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(stream.Headers("b", 0, nil, "")) != 3 {
		t.Error("no error header expected without an error")
	}
}

// TestPingWaitsForALateBroker starts the broker after Ping began: Ping must
// keep retrying and succeed.
func TestPingWaitsForALateBroker(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	done := make(chan error, 1)
	go func() {
		done <- stream.Ping(context.Background(), stream.Config{Brokers: []string{addr}, ConnectTimeout: 20 * time.Second})
	}()
	time.Sleep(1500 * time.Millisecond)
	b, err := stream.StartEmbedded(addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := <-done; err != nil {
		t.Errorf("Ping gave up on a broker that started 1.5s late: %v", err)
	}
}
