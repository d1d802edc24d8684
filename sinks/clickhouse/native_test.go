package clickhouse

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// EnvDSN names the ClickHouse server the clickhouse-go/v2 tests use, e.g.
// clickhouse://flexiflow:flexiflow@127.0.0.1:9000/flexiflow (docker compose
// up clickhouse).
const EnvDSN = "FLEXIFLOW_CLICKHOUSE_DSN"

// nativeDSN returns the ClickHouse the clickhouse-go/v2 tests use: the
// server EnvDSN names, or else the ClickHouse engine (chDB) behind
// deploy/clickhouse/chdb_http.py, reached through clickhouse-go's HTTP
// protocol, so the tests run wherever chDB does (and under CI). fresh
// says whether the database starts empty.
func nativeDSN(t *testing.T) (dsn string, fresh bool) {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, false
	}
	return startChDBHTTP(t)("flexiflow"), true
}

// TestNativeEndToEnd runs migrate, the sink's inserts, every query and the
// schema check through clickhouse-go/v2 (Native), with the same checks as
// the chDB test: the driver's own encoding of every column and decoding of
// every result, against a real server or the engine over HTTP.
func TestNativeEndToEnd(t *testing.T) {
	dsn, fresh := nativeDSN(t)
	ctx := context.Background()
	n, err := OpenNative(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if fresh {
		if err := CheckSchema(ctx, n); err == nil || !errors.Is(err, ErrSchemaOutdated) || !strings.Contains(err.Error(), "run: flexiflow migrate") {
			t.Fatalf("before migrate: %v", err)
		}
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
	ran := map[string]bool{}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			start := time.Now()
			demoRoundTrip(t, b.Start(t), n, n, ran)
			t.Logf("round trip through clickhouse-go/v2 in %s", time.Since(start).Round(time.Millisecond))
		})
	}
	for _, q := range QueryNames() {
		if !ran[q] {
			t.Errorf("shipped query %s was not executed", q)
		}
	}
}

// TestNativeBadLogin checks that a wrong password is reported as such,
// without echoing it.
func TestNativeBadLogin(t *testing.T) {
	dsn, _ := nativeDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	user := "default"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, "certainly-not-the-password")
	_, err = OpenNative(context.Background(), u.String())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v, want ErrAuth", err)
	}
	if want := "certainly-not-the-password"; err != nil && strings.Contains(err.Error(), want) {
		t.Errorf("the error shows the password: %v", err)
	}
}
