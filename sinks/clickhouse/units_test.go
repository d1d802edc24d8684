package clickhouse

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
)

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in       string
		from, to time.Time
		batches  [2]int64
		err      string
	}{
		{in: "2026-11-23T10:00:00Z/2026-11-23T11:00:00Z", from: now.Add(-2 * time.Hour), to: now.Add(-time.Hour)},
		{in: "-2h/-1h", from: now.Add(-2 * time.Hour), to: now.Add(-time.Hour)},
		{in: "-1d/now", from: now.Add(-24 * time.Hour), to: now},
		{in: "2026-11-23T11:30:00+01:00/now", from: now.Add(-90 * time.Minute), to: now},
		{in: "batches:0-400", batches: [2]int64{0, 400}},
		{in: "batches:800-", batches: [2]int64{800, -1}},
		{in: "-1h", err: "FROM/TO"},
		{in: "-1h/-2h", err: "not after"},
		{in: "yesterday/now", err: "RFC 3339"},
		{in: "-2x/now", err: "duration"},
		{in: "batches:a-5", err: "batches:0-400"},
		{in: "batches:5-5", err: "greater"},
		{in: "batches:-5-", err: "batches:0-400"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			w, err := ParseWindow(c.in, now)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one mentioning %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Batches {
				if got := [2]int64{w.FromBatch, w.ToBatch}; got != c.batches {
					t.Errorf("batches %v, want %v", got, c.batches)
				}
				return
			}
			if !w.From.Equal(c.from) || !w.To.Equal(c.to) {
				t.Errorf("[%s, %s), want [%s, %s)", w.From, w.To, c.from, c.to)
			}
		})
	}
}

func TestSplitStatements(t *testing.T) {
	got := SplitStatements("-- comment; here\nCREATE TABLE a\n(\n  x Int8 -- a column\n);\n\n-- next\nSELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a\n(\n  x Int8 -- a column\n)", "SELECT 1", "SELECT 2"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
	ms, err := Migrations()
	if err != nil || len(ms) == 0 || ms[0].Version != 1 || len(ms[0].Statements) != 5 {
		t.Fatalf("migrations %+v, %v", ms, err)
	}
	for _, q := range []string{QueryDrift, QuerySwitches, QueryTrace, QueryBatchWindow, QuerySteps, QueryProfile} {
		if _, err := QuerySQL(q); err != nil {
			t.Error(err)
		}
	}
}

// summarize mimics what a stage writes for a batch of values (nearest-rank
// percentiles), so the sketch can be checked against the values themselves.
func summarize(xs []float64) schemas.FeatureSummary {
	s := slices.Clone(xs)
	slices.Sort(s)
	f := schemas.FeatureSummary{Name: "x", Count: int64(len(s)), Min: s[0], Max: s[len(s)-1]}
	for _, x := range s {
		f.Mean += x / float64(len(s))
	}
	for _, q := range schemas.FeatureQuantiles {
		f.Quantiles = append(f.Quantiles, s[min(len(s)-1, int(q*float64(len(s))))])
	}
	return f
}

// TestDriftFromSketches checks the sketch-based statistics against known
// cases: identical inputs give zero, a shifted normal gives the PSI and KS
// computed from the raw values on the same bins, within what five
// percentiles per batch can tell.
func TestDriftFromSketches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	batches := func(n, size int, mu, sigma float64) ([]schemas.FeatureSummary, []float64) {
		var fs []schemas.FeatureSummary
		var all []float64
		for range n {
			xs := make([]float64, size)
			for i := range xs {
				xs[i] = mu + sigma*rng.NormFloat64()
			}
			fs = append(fs, summarize(xs))
			all = append(all, xs...)
		}
		return fs, all
	}
	ref, refRaw := batches(200, 64, 0, 1)
	same, _ := batches(200, 64, 0, 1)
	shifted, shiftRaw := batches(200, 64, 0.5, 1)

	d := FeatureDrift("x", ref, same)
	if d.PSI > 0.01 || d.KS > 0.02 || d.JS > 0.01 {
		t.Errorf("same distribution: %+v", d)
	}
	d = FeatureDrift("x", ref, shifted)
	// Exact PSI and KS of the raw values on the same bins.
	var edges []float64
	for i := range schemas.FeatureQuantiles {
		var m float64
		for _, f := range ref {
			m += f.Quantiles[i] / float64(len(ref))
		}
		edges = append(edges, m)
	}
	share := func(xs []float64) []float64 {
		out := make([]float64, len(edges)+1)
		for _, x := range xs {
			i, _ := slices.BinarySearch(edges, x)
			out[i] += 1 / float64(len(xs))
		}
		return out
	}
	p, q := share(refRaw), share(shiftRaw)
	var psi, ks, cp, cq float64
	for i := range p {
		psi += (q[i] - p[i]) * math.Log(q[i]/p[i])
		cp, cq = cp+p[i], cq+q[i]
		if i < len(edges) {
			ks = math.Max(ks, math.Abs(cp-cq))
		}
	}
	if math.Abs(d.PSI-psi) > 0.03 || math.Abs(d.KS-ks) > 0.02 {
		t.Errorf("shifted by 0.5σ: sketch PSI %.4f KS %.4f, raw values %.4f %.4f", d.PSI, d.KS, psi, ks)
	}
	if d.PSI < 0.2 || d.JS <= 0 {
		t.Errorf("a 0.5σ shift should be flagged: %+v", d)
	}
}

func TestResultFormats(t *testing.T) {
	r := &Result{Columns: []Column{{"feature", "String"}, {"psi", "Float64"}, {"at", "DateTime64(6, 'UTC')"}, {"drifted", "Bool"}, {"n", "UInt64"}},
		Rows: [][]any{{"pixels", 0.23456, time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC), true, uint64(300)}, {"label, \"x\"", math.NaN(), time.Time{}, false, uint64(0)}}}
	want := map[string]string{
		FormatTable: "feature     psi     at                           drifted  n\npixels      0.2346  2026-11-23T10:00:00.123456Z  yes      300\nlabel, \"x\"  -       0001-01-01T00:00:00.000000Z  no       0\n",
		FormatCSV:   "feature,psi,at,drifted,n\npixels,0.23456,2026-11-23T10:00:00.123456Z,yes,300\n\"label, \"\"x\"\"\",-,0001-01-01T00:00:00.000000Z,no,0\n",
		FormatJSON:  "[\n  {\"feature\": \"pixels\", \"psi\": 0.23456, \"at\": \"2026-11-23T10:00:00.123456Z\", \"drifted\": true, \"n\": 300},\n  {\"feature\": \"label, \\\"x\\\"\", \"psi\": null, \"at\": \"0001-01-01T00:00:00Z\", \"drifted\": false, \"n\": 0}\n]\n",
	}
	for f, w := range want {
		var b bytes.Buffer
		if err := r.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if b.String() != w {
			t.Errorf("%s:\n%s\nwant\n%s", f, b.String(), w)
		}
	}
	if err := r.Write(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("xml should be refused")
	}
}

// TestMigrationScriptRunsInChDB executes what `flexiflow migrate --print`
// writes, statement by statement, in the ClickHouse engine: a user who
// applies the script by hand gets the schema at the latest version.
func TestMigrationScriptRunsInChDB(t *testing.T) {
	ch := startChDB(t)
	script, err := MigrationScript()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := CheckSchema(ctx, ch); !errors.Is(err, ErrSchemaOutdated) {
		t.Fatalf("empty database: %v, want ErrSchemaOutdated", err)
	}
	for _, s := range SplitStatements(script) {
		if err := ch.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", firstLine(s), err)
		}
	}
	if v, err := SchemaVersion(ctx, ch); err != nil || v != LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, LatestVersion())
	}
	if err := CheckSchema(ctx, ch); err != nil {
		t.Fatal(err)
	}
}

func TestNotFoundIsErrNotFound(t *testing.T) {
	err := notFoundf("workflow %q has no step %q", "w", "s")
	if !errors.Is(err, ErrNotFound) || err.Error() != `workflow "w" has no step "s"` {
		t.Errorf("%v", err)
	}
}
