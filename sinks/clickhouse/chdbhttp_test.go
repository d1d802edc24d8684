package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/sinks/clickhouse/chdbtest"
	"github.com/flexiflow/flexiflow/stream"
	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// startChDBHTTP starts deploy/clickhouse/chdb_http.py, a ClickHouse HTTP
// endpoint on chDB, and returns a DSN for clickhouse-go/v2 with the given
// password (the bridge accepts user flexiflow, password flexiflow).
func startChDBHTTP(t testing.TB) (dsnFor func(password string) string) {
	t.Helper()
	addr := chdbtest.StartHTTP(t, "flexiflow", "flexiflow")
	return func(password string) string {
		return fmt.Sprintf("http://flexiflow:%s@%s/default?dial_timeout=5s", password, addr)
	}
}

// TestNativeOverHTTPOnChDB runs the clickhouse-go/v2 path (Native: migrate,
// the sink's inserts, every query, the login check) against the ClickHouse
// engine, through clickhouse-go's HTTP protocol and a chDB bridge: the
// driver's own encoding of every column and decoding of every result.
func TestNativeOverHTTPOnChDB(t *testing.T) {
	dsn := startChDBHTTP(t)
	ctx := context.Background()
	n, err := OpenNative(ctx, dsn("flexiflow"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := CheckSchema(ctx, n); err == nil || !errors.Is(err, ErrSchemaOutdated) || !strings.Contains(err.Error(), "run: flexiflow migrate") {
		t.Fatalf("before migrate: %v", err)
	}
	if a, err := Migrate(ctx, n); err != nil || a.To != LatestVersion() {
		t.Fatalf("migrate: %+v %v", a, err)
	}
	if a, err := Migrate(ctx, n); err != nil || len(a.Files) != 0 {
		t.Fatalf("second migrate: %+v, %v", a, err)
	}
	if err := CheckSchema(ctx, n); err != nil {
		t.Fatal(err)
	}
	_, err = OpenNative(ctx, dsn("wrong-password"))
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("wrong password: %v (want ErrAuth, no password in the message)", err)
	}
	ran := map[string]bool{}
	cfg := streamTestKfake(t)
	start := time.Now()
	demoRoundTrip(t, cfg, n, n, ran)
	t.Logf("round trip through clickhouse-go/v2 over HTTP in %s", time.Since(start).Round(time.Millisecond))
	for _, q := range QueryNames() {
		if !ran[q] {
			t.Errorf("shipped query %s was not executed", q)
		}
	}
}

func streamTestKfake(t *testing.T) stream.Config { return streamtest.Backends(t)[0].Start(t) }
