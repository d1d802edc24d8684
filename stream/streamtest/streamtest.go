// Package streamtest gives integration tests the Kafka clusters to run
// against: always the embedded broker (kfake), and a real Apache Kafka
// broker when FLEXIFLOW_KAFKA_BROKERS names one (make test starts one from
// deploy/kafka/kafka.sh and sets it).
//
// When the variable is set and the broker does not answer, tests fail: they
// never fall back silently. Under CI (CI=true) the variable must be set.
package streamtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stream"
)

// EnvBrokers names the real Kafka brokers tests use.
const EnvBrokers = "FLEXIFLOW_KAFKA_BROKERS"

// Backend is one Kafka cluster tests can run against.
type Backend struct {
	Name string
	// Start returns the brokers to use for one test; the embedded backend
	// starts a fresh broker that the test's cleanup stops.
	Start func(t *testing.T) stream.Config
}

// Backends lists the clusters this run tests against.
func Backends(t *testing.T) []Backend {
	t.Helper()
	out := []Backend{{Name: "kfake", Start: func(t *testing.T) stream.Config {
		t.Helper()
		b, err := stream.StartEmbedded("127.0.0.1:0", 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return stream.Config{Brokers: b.Addrs()}
	}}}
	brokers := os.Getenv(EnvBrokers)
	if brokers == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI: make test starts a real Kafka broker and sets it; run the suite through make test", EnvBrokers)
		}
		return out
	}
	return append(out, Backend{Name: "kafka", Start: func(t *testing.T) stream.Config {
		t.Helper()
		cfg := stream.Config{Brokers: strings.Split(brokers, ","), ConnectTimeout: 10 * time.Second}
		if err := stream.Ping(context.Background(), cfg); err != nil {
			t.Fatalf("%s=%s is set but the broker does not answer: %v", EnvBrokers, brokers, err)
		}
		return cfg
	}})
}

// Unique returns a name no other test (in this run or an earlier one on the
// same broker) uses, for workflow and topic names.
func Unique(prefix string) string {
	return fmt.Sprintf("%s%d%04d", prefix, time.Now().UnixMilli()%1e7, rand.IntN(10000))
}
