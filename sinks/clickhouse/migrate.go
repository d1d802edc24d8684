package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSchemaOutdated reports a schema older than this binary expects.
var ErrSchemaOutdated = errors.New("the ClickHouse schema is older than this flexiflow expects")

// Applied is what Migrate did.
type Applied struct {
	From, To uint32
	Files    []string // migrations applied now
}

// Migrate brings the schema up to LatestVersion: it creates the version
// table, reads the highest applied version, and applies every later
// migration in order, recording each. Statements are idempotent (IF NOT
// EXISTS), so a migration interrupted halfway is simply applied again.
func Migrate(ctx context.Context, e Engine) (Applied, error) {
	if err := e.Exec(ctx, SchemaVersionDDL()); err != nil {
		return Applied{}, fmt.Errorf("creating %s: %w", SchemaVersionTable, err)
	}
	cur, err := SchemaVersion(ctx, e)
	if err != nil {
		return Applied{}, err
	}
	ms, err := Migrations()
	if err != nil {
		return Applied{}, err
	}
	a := Applied{From: cur, To: cur}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		for i, s := range m.Statements {
			if err := e.Exec(ctx, s); err != nil {
				return a, fmt.Errorf("migration %s, statement %d (%s): %w", m.Name, i+1, firstLine(s), err)
			}
		}
		if err := e.Exec(ctx, m.record()); err != nil {
			return a, fmt.Errorf("recording migration %s: %w", m.Name, err)
		}
		a.To = m.Version
		a.Files = append(a.Files, m.Name)
	}
	return a, nil
}

// SchemaVersion returns the highest applied migration (0 when none).
func SchemaVersion(ctx context.Context, e Engine) (uint32, error) {
	res, err := e.Query(ctx, "SELECT toUInt32(max(version)) AS v FROM "+SchemaVersionTable, nil)
	if err != nil {
		return 0, fmt.Errorf("reading the schema version from %s: %w", SchemaVersionTable, err)
	}
	if len(res.Rows) == 0 {
		return 0, nil
	}
	v, err := strconv.ParseUint(res.String(0, "v"), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("reading the schema version: unexpected value %q", res.String(0, "v"))
	}
	return uint32(v), nil
}

// CheckSchema fails with ErrSchemaOutdated, saying what to run, when the
// schema is missing or older than LatestVersion.
func CheckSchema(ctx context.Context, e Engine) error {
	v, err := SchemaVersion(ctx, e)
	if err != nil {
		if errors.Is(err, ErrUnknownTable) {
			return fmt.Errorf("%w: no FlexiFlow tables in this database (schema version 0, expected %d); run: flexiflow migrate --clickhouse DSN",
				ErrSchemaOutdated, LatestVersion())
		}
		return err
	}
	if v < LatestVersion() {
		return fmt.Errorf("%w: schema version %d, expected %d; run: flexiflow migrate --clickhouse DSN", ErrSchemaOutdated, v, LatestVersion())
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}
