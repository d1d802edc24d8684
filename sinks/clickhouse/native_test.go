package clickhouse

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/stream/streamtest"
)

// EnvDSN names the ClickHouse server the clickhouse-go/v2 tests use, e.g.
// clickhouse://flexiflow:flexiflow@127.0.0.1:9000/flexiflow (docker compose
// up clickhouse).
const EnvDSN = "FLEXIFLOW_CLICKHOUSE_DSN"

func nativeDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skipf("%s is not set: no ClickHouse server to test clickhouse-go/v2 against (docker compose up -d clickhouse; export %s=clickhouse://flexiflow:flexiflow@127.0.0.1:9000/flexiflow)", EnvDSN, EnvDSN)
	}
	return dsn
}

// TestNativeEndToEnd runs migrate, the sink and every query through
// clickhouse-go/v2 against a real server, with the same checks as the chDB
// test.
func TestNativeEndToEnd(t *testing.T) {
	dsn := nativeDSN(t)
	ctx := context.Background()
	n, err := OpenNative(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := Migrate(ctx, n); err != nil {
		t.Fatal(err)
	}
	if a, err := Migrate(ctx, n); err != nil || len(a.Files) != 0 {
		t.Fatalf("second migrate: %+v, %v", a, err)
	}
	if err := CheckSchema(ctx, n); err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, b := range streamtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { demoRoundTrip(t, b.Start(t), n, n, ran) })
	}
}

// TestNativeBadLogin checks that a wrong password is reported as such.
func TestNativeBadLogin(t *testing.T) {
	u, err := url.Parse(nativeDSN(t))
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
