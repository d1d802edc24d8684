package clickhouse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stream"
)

// Errors Native's messages wrap, for callers that treat them differently
// (the sink retries ErrUnreachable and gives up on ErrAuth at start).
var (
	ErrAuth        = errors.New("login refused")
	ErrUnreachable = errors.New("server unreachable")
	// ErrUnknownTable: a statement names a table the database lacks (for
	// FlexiFlow's tables: the schema was never migrated). It leaves the
	// message as it is; test with errors.Is.
	ErrUnknownTable = errors.New("unknown table")
)

// unknownTable marks an error as ErrUnknownTable without changing its text.
type unknownTable struct{ error }

func (e unknownTable) Unwrap() error      { return e.error }
func (unknownTable) Is(target error) bool { return target == ErrUnknownTable }

// Native is an Engine and Inserter on a ClickHouse server through
// clickhouse-go/v2 (native protocol, or HTTP with an http:// DSN).
type Native struct {
	conn driver.Conn
	// Where is the server's address, database and user, without the
	// password: safe for logs and messages.
	Where string
}

// ParseDSN checks a ClickHouse DSN (clickhouse://user:password@host:9000/db?dial_timeout=5s)
// and returns its options and a description safe to log (no password).
func ParseDSN(dsn string) (*ch.Options, string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" || !(u.Scheme == "clickhouse" || u.Scheme == "tcp" || u.Scheme == "http" || u.Scheme == "https") {
		return nil, "", errors.New("--clickhouse: not a ClickHouse DSN; give clickhouse://USER:PASSWORD@HOST:9000/DATABASE (native protocol) or http://HOST:8123/DATABASE")
	}
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("--clickhouse %s: %w", u.Redacted(), err)
	}
	db := opts.Auth.Database
	if db == "" {
		db = "default"
	}
	user := opts.Auth.Username
	if user == "" {
		user = "default"
	}
	return opts, fmt.Sprintf("%s (database %s, user %s)", strings.Join(opts.Addr, ","), db, user), nil
}

// Option adjusts how OpenNative connects, beyond what the DSN says.
type Option func(*ch.Options) error

// WithCAFile connects over TLS, trusting the certificate authority in a PEM
// file (a private CA); without it, ?secure=true in the DSN trusts the
// system's authorities. Over the native protocol the option alone turns TLS
// on; over HTTP give an https:// DSN.
func WithCAFile(path string) Option {
	return func(o *ch.Options) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("ClickHouse CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ClickHouse CA file %s holds no PEM certificate", path)
		}
		if o.TLS == nil {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.TLS.RootCAs = pool
		return nil
	}
}

// WithPassword sets the password, overriding any in the DSN, so the DSN
// can stay free of secrets (the password comes from a file or the
// environment). An empty password changes nothing.
func WithPassword(password string) Option {
	return func(o *ch.Options) error {
		if password != "" {
			o.Auth.Password = password
		}
		return nil
	}
}

// OpenNative connects to the server a DSN names and checks that it
// answers, with clear messages for a wrong address, a refused login or an
// unknown database. It does not check the schema (see CheckSchema).
func OpenNative(ctx context.Context, dsn string, options ...Option) (*Native, error) {
	opts, where, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	for _, o := range options {
		if err := o(opts); err != nil {
			return nil, err
		}
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse at %s: %w", where, err)
	}
	n := &Native{conn: conn, Where: where}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+5*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		_ = conn.Close() // the ping's error is the one to report
		return nil, n.explain(err)
	}
	return n, nil
}

// Close closes the connections.
func (n *Native) Close() error { return n.conn.Close() }

// Exec runs one statement.
func (n *Native) Exec(ctx context.Context, sql string) error {
	if err := n.conn.Exec(ctx, sql); err != nil {
		return n.explain(err)
	}
	return nil
}

// Query runs a query with server-side query parameters.
func (n *Native) Query(ctx context.Context, sql string, params map[string]string) (*Result, error) {
	if len(params) > 0 {
		ctx = ch.Context(ctx, ch.WithParameters(ch.Parameters(params)))
	}
	rows, err := n.conn.Query(ctx, sql)
	if err != nil {
		return nil, n.explain(err)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	res := &Result{}
	for _, c := range cts {
		res.Columns = append(res.Columns, Column{Name: c.Name(), Type: c.DatabaseTypeName()})
	}
	for rows.Next() {
		ptrs := make([]any, len(cts))
		for i, c := range cts {
			ptrs[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("reading a result row: %w", err)
		}
		row := make([]any, len(cts))
		for i, p := range ptrs {
			row[i] = normalize(reflect.ValueOf(p).Elem().Interface())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, n.explain(err)
	}
	return res, nil
}

// Insert writes rows into traces in one block, with a deduplication token
// so that ClickHouse drops a retry of the same block.
func (n *Native) Insert(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_deduplication_token": dedupToken(rows)}))
	b, err := n.conn.PrepareBatch(ctx, "INSERT INTO traces ("+strings.Join(Columns, ", ")+")")
	if err != nil {
		return n.explain(err)
	}
	defer b.Abort()
	for i := range rows {
		if err := b.AppendStruct(&rows[i]); err != nil {
			return fmt.Errorf("encoding trace %s for ClickHouse: %w", rows[i].AttemptID, err)
		}
	}
	if err := b.Send(); err != nil {
		return n.explain(err)
	}
	return nil
}

// explain turns driver errors into what to do about them.
func (n *Native) explain(err error) error {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 516, 192, 193, 194: // AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD
			return fmt.Errorf("ClickHouse at %s: %w: %w; check the user and password (in the DSN, clickhouse://USER:PASSWORD@HOST:9000/DB, or in --clickhouse-password-file / FLEXIFLOW_CLICKHOUSE_PASSWORD)", n.Where, ErrAuth, err)
		case 81: // UNKNOWN_DATABASE
			return fmt.Errorf("ClickHouse at %s: %w; create the database (CREATE DATABASE …) or name an existing one in the DSN", n.Where, err)
		case 60: // UNKNOWN_TABLE
			return unknownTable{fmt.Errorf("ClickHouse at %s: %w; run: flexiflow migrate --clickhouse DSN", n.Where, err)}
		}
		return fmt.Errorf("ClickHouse at %s: %w", n.Where, err)
	}
	var ne net.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach ClickHouse at %s: %w: %w; check that the server runs and the DSN's host and port (native protocol: 9000)", n.Where, ErrUnreachable, err)
	}
	return fmt.Errorf("ClickHouse at %s: %w", n.Where, err)
}

// normalize maps driver scan values onto Result's value types.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64, int64, uint64:
		return x
	case time.Time:
		return x.UTC()
	case float32:
		return float64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	return fmt.Sprint(v)
}

// DialNative opens the server like OpenNative, but while it is unreachable
// it retries with backoff (logging each miss) until ctx ends or wait has
// passed (wait <= 0: until ctx ends). A malformed DSN or a refused login
// fails at once.
func DialNative(ctx context.Context, dsn string, wait time.Duration, log *zap.Logger, options ...Option) (*Native, error) {
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	backoff := stream.NewBackoff(250*time.Millisecond, 10*time.Second)
	for attempt := 1; ; attempt++ {
		n, err := OpenNative(ctx, dsn, options...)
		if err == nil || !errors.Is(err, ErrUnreachable) {
			return n, err
		}
		wait := backoff.Next()
		log.Warn("ClickHouse not reachable yet; retrying", zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(err))
		if stream.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
	}
}
