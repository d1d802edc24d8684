package clickhouse

import (
	"fmt"
	"testing"

	"github.com/flexiflow/flexiflow/sinks/clickhouse/chdbtest"
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
