// Package registrytest finds the real Schema Registry tests use: the one
// make test starts (deploy/registry/registry.sh, Apicurio Registry) and
// names in FLEXIFLOW_REGISTRY_URL. Without it a test is skipped saying
// why; under CI (CI=true) it fails instead, so a missing registry never
// passes as a green run.
package registrytest

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// EnvURL names the registry's URL (Confluent's API: for Apicurio,
// http://host:port/apis/ccompat/v7).
const EnvURL = "FLEXIFLOW_REGISTRY_URL"

// URL returns the real registry's URL, or skips (fails under CI).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u != "" {
		return u
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set under CI: make test starts a real Schema Registry and sets it; run the suite through make test", EnvURL)
	}
	t.Skipf("no real Schema Registry: set %s (bash deploy/registry/registry.sh up; then %s=$(bash deploy/registry/registry.sh url))", EnvURL, EnvURL)
	return ""
}

var seq atomic.Int64

// Subject is a subject name no other test run uses: the registry keeps
// subjects between tests.
func Subject(prefix string) string {
	return fmt.Sprintf("%s-%d-%d-value", prefix, time.Now().UnixNano(), seq.Add(1))
}
