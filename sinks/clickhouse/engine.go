package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"time"
)

// Inserter writes rows into the traces table. An error means none or only
// some of the rows may have landed; the sink then retries the same rows,
// which the table deduplicates.
type Inserter interface {
	Insert(ctx context.Context, rows []Row) error
}

// Engine runs the shipped SQL: statements (DDL, inserts of fixed text) and
// queries with ClickHouse query parameters ({name:Type} placeholders whose
// values travel separately from the SQL text).
type Engine interface {
	Exec(ctx context.Context, sql string) error
	Query(ctx context.Context, sql string, params map[string]string) (*Result, error)
}

// Column is a result column's name and ClickHouse type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is a query's answer. Values are normalised across engines to
// string, int64, uint64, float64, bool, time.Time (UTC), []any or nil.
type Result struct {
	Columns []Column
	Rows    [][]any
}

// Index returns the position of the named column, or -1.
func (r *Result) Index(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Value returns row i's value of the named column (nil if absent).
func (r *Result) Value(i int, name string) any {
	j := r.Index(name)
	if j < 0 || i >= len(r.Rows) {
		return nil
	}
	return r.Rows[i][j]
}

// Float returns a numeric value as float64 (NaN when absent or null).
func (r *Result) Float(i int, name string) float64 {
	switch v := r.Value(i, name).(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case bool:
		if v {
			return 1
		}
		return 0
	}
	return math.NaN()
}

// String returns a value as text.
func (r *Result) String(i int, name string) string {
	switch v := r.Value(i, name).(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return formatValue(v)
	}
}

// Time returns a DateTime value (zero when absent).
func (r *Result) Time(i int, name string) time.Time {
	t, _ := r.Value(i, name).(time.Time)
	return t
}

// dedupToken names a block of rows by its attempt ids, so that retrying the
// very same insert after a lost acknowledgement is dropped by ClickHouse
// (insert_deduplication_token with the table's
// non_replicated_deduplication_window).
func dedupToken(rows []Row) string {
	h := sha256.New()
	for i := range rows {
		h.Write([]byte(rows[i].AttemptID))
		h.Write([]byte{0})
	}
	return "flexiflow-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// timeParam formats a time for a DateTime64(6, 'UTC') query parameter.
func timeParam(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Bounds of DateTime64 the open ends of windows use.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2299, 12, 31, 0, 0, 0, 0, time.UTC)
)
