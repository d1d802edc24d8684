package clickhouse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/sinks/clickhouse/chdbtest"
)

// chdbEngine is an Engine and Inserter on chDB, the ClickHouse engine in
// process, driven through deploy/clickhouse/chdb_run.py: SQL and query
// parameters go to chDB exactly as shipped, rows as JSONEachRow.
type chdbEngine struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startChDB starts the bridge on a fresh data directory, or skips (fails
// under CI) when chDB is not installed.
func startChDB(t testing.TB) *chdbEngine {
	t.Helper()
	py := chdbtest.Python(t)
	cmd := exec.Command(py, chdbtest.Script(t, "chdb_run.py"), t.TempDir())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the chDB bridge with %s: %v", py, err)
	}
	e := &chdbEngine{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	if _, err := e.Query(context.Background(), "SELECT 1 AS one", nil); err != nil {
		t.Fatalf("chDB bridge does not answer: %v", err)
	}
	return e
}

type chdbAnswer struct {
	OK    bool              `json:"ok"`
	Error string            `json:"error"`
	Meta  []Column          `json:"meta"`
	Data  []json.RawMessage `json:"data"`
}

func (e *chdbEngine) call(req map[string]any) (*chdbAnswer, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("chDB bridge: %w", err)
	}
	line, err := e.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("chDB bridge: %w", err)
	}
	var a chdbAnswer
	if err := json.Unmarshal(line, &a); err != nil {
		return nil, fmt.Errorf("chDB bridge answered %q: %w", line, err)
	}
	if !a.OK {
		err := fmt.Errorf("chDB: %s", a.Error)
		if strings.Contains(a.Error, "(UNKNOWN_TABLE)") { // chDB's errors are text only
			err = unknownTable{err}
		}
		return nil, err
	}
	return &a, nil
}

func (e *chdbEngine) Exec(_ context.Context, sql string) error {
	_, err := e.call(map[string]any{"op": "exec", "sql": sql})
	return err
}

func (e *chdbEngine) Query(_ context.Context, sql string, params map[string]string) (*Result, error) {
	a, err := e.call(map[string]any{"op": "query", "sql": sql, "params": params})
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: a.Meta}
	for _, raw := range a.Data {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var vals []any
		if err := d.Decode(&vals); err != nil {
			return nil, err
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i], err = chdbValue(a.Meta[i].Type, v)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", a.Meta[i].Name, err)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// chdbValue normalises a JSONCompact value by its ClickHouse type.
func chdbValue(typ string, v any) (any, error) {
	typ = strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(typ, "Nullable("), ")"), "LowCardinality(")
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		switch {
		case strings.HasPrefix(typ, "UInt"):
			return strconv.ParseUint(x.String(), 10, 64)
		case strings.HasPrefix(typ, "Int"):
			return strconv.ParseInt(x.String(), 10, 64)
		default:
			return x.Float64()
		}
	case string:
		switch {
		case strings.HasPrefix(typ, "DateTime"):
			return time.ParseInLocation("2006-01-02 15:04:05.999999999", x, time.UTC)
		case strings.HasPrefix(typ, "Float"):
			return strconv.ParseFloat(x, 64)
		case strings.HasPrefix(typ, "UInt"):
			return strconv.ParseUint(x, 10, 64)
		case strings.HasPrefix(typ, "Int"):
			return strconv.ParseInt(x, 10, 64)
		}
		return x, nil
	case []any:
		inner := strings.TrimSuffix(strings.TrimPrefix(typ, "Array("), ")")
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = chdbValue(inner, e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

// Insert writes rows as JSONEachRow, with the sink's deduplication token.
func (e *chdbEngine) Insert(_ context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	body, err := AppendJSONEachRow(nil, rows)
	if err != nil {
		return err
	}
	table := fmt.Sprintf("traces (%s) SETTINGS insert_deduplication_token = '%s'", strings.Join(Columns, ", "), dedupToken(rows))
	_, err = e.call(map[string]any{"op": "insert", "table": table, "rows": string(body)})
	return err
}
