package clickhouse

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed sql/schema_version.sql sql/migrations/*.sql sql/queries/*.sql
var sqlFiles embed.FS

// Migration is one versioned DDL file from sql/migrations.
type Migration struct {
	Version    uint32
	Name       string // file name, e.g. 0001_traces.sql
	Statements []string
}

// Query names of the shipped queries (sql/queries/<name>.sql).
const (
	QueryDrift       = "drift"
	QuerySwitches    = "switches"
	QueryTrace       = "trace"
	QueryBatchWindow = "batch_window"
	QuerySteps       = "steps"
	QueryProfile     = "profile"
)

// SchemaVersionTable records the applied migrations.
const SchemaVersionTable = "flexiflow_schema_version"

// Migrations returns the embedded migrations in version order. They are
// read and split once; callers must not modify them.
func Migrations() ([]Migration, error) { return migrations() }

var migrations = sync.OnceValues(readMigrations)

func readMigrations() ([]Migration, error) {
	entries, err := fs.ReadDir(sqlFiles, "sql/migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseUint(prefix, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration file %s: name must start with a version number and an underscore, e.g. 0002_more.sql", name)
		}
		b, err := sqlFiles.ReadFile("sql/migrations/" + name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: uint32(v), Name: name, Statements: SplitStatements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].Name, out[i].Name, out[i].Version)
		}
	}
	return out, nil
}

// record is the statement that records m in the version table.
func (m Migration) record() string {
	return fmt.Sprintf("INSERT INTO %s (version, name) VALUES (%d, '%s')", SchemaVersionTable, m.Version, m.Name)
}

// LatestVersion is the schema version this binary expects.
func LatestVersion() uint32 {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// SchemaVersionDDL is the statement that creates the version table.
func SchemaVersionDDL() string {
	b, _ := sqlFiles.ReadFile("sql/schema_version.sql")
	return SplitStatements(string(b))[0]
}

// QuerySQL returns the text of a shipped query, exactly as embedded.
func QuerySQL(name string) (string, error) {
	b, err := sqlFiles.ReadFile("sql/queries/" + name + ".sql")
	if err != nil {
		return "", fmt.Errorf("no shipped query %q", name)
	}
	return string(b), nil
}

// QueryNames lists the shipped queries.
func QueryNames() []string {
	entries, _ := fs.ReadDir(sqlFiles, "sql/queries")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".sql"))
	}
	return out
}

// SplitStatements splits a SQL file into statements at semicolons that end
// a line, dropping whole-line "--" comments. Shipped files keep semicolons
// out of string literals and comments' line ends.
func SplitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || (t == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(t, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// MigrationScript is the whole schema as one SQL script (what
// `flexiflow migrate --print` writes): the version table, every migration
// and the version rows.
func MigrationScript() (string, error) {
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- FlexiFlow trace schema, version %d. Apply with: flexiflow migrate --clickhouse DSN\n\n", LatestVersion())
	b.WriteString(SchemaVersionDDL() + ";\n\n")
	for _, m := range ms {
		fmt.Fprintf(&b, "-- %s\n", m.Name)
		for _, s := range m.Statements {
			b.WriteString(s + ";\n\n")
		}
		b.WriteString(m.record() + ";\n\n")
	}
	return b.String(), nil
}
