package main

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutcomesAndReplay records the trap workflow's outcomes on 30 demo
// batches with the real binary, checks the table has a row for every
// (upstream, model) pair of every item, and replays it: --format json
// prints the table, the items and every policy with its cost per
// delivered, delivery rate and regret, the oracle's regret 0.
func TestOutcomesAndReplay(t *testing.T) {
	table := filepath.Join(t.TempDir(), "trap.csv")
	_, stderr, err := run(t, 2*time.Minute, "bench", "outcomes", "--workflow-trap", "--batches", "30", "--repeat", "1", "--out", table)
	if err != nil {
		t.Fatalf("bench outcomes: %v\n%s", err, stderr)
	}
	f, err := os.Open(table)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "item,step,upstream,model,passed,cost_ms" {
		t.Fatalf("header %v", rows[0])
	}
	// 3 denoise models, then 3 classify models after each of them.
	if got, want := len(rows)-1, 30*(3+3*3); got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	denoisePassed := 0
	for _, r := range rows[1:] {
		if r[1] == "denoise" && r[3] == "passthrough" && r[4] == "true" {
			denoisePassed++
		}
	}
	if denoisePassed != 30 {
		t.Errorf("passthrough passed the trap's denoise step on %d of 30 batches; the trap's check is the pixel range alone, so it must pass all", denoisePassed)
	}

	out, stderr, err := run(t, time.Minute, "bench", "replay", "--table", table, "--seeds", "2", "--oracle-window", "10", "--format", "json")
	if err != nil {
		t.Fatalf("bench replay: %v\n%s", err, stderr)
	}
	var rep struct {
		Table    string `json:"table"`
		Items    int    `json:"items"`
		Policies []struct {
			Name             string   `json:"name"`
			CostPerDelivered *float64 `json:"cost_per_delivered"`
			DeliveryRate     *float64 `json:"delivery_rate"`
			Regret           *float64 `json:"regret"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--format json printed %q: %v", out, err)
	}
	if rep.Table != "trap" || rep.Items != 30 {
		t.Errorf("table %q, items %d; want trap, 30", rep.Table, rep.Items)
	}
	names := map[string]bool{}
	for _, p := range rep.Policies {
		names[p.Name] = true
		if p.CostPerDelivered == nil || p.DeliveryRate == nil || p.Regret == nil {
			t.Errorf("policy %s lacks a field: %+v", p.Name, p)
			continue
		}
		if p.Name == "oracle" && *p.Regret != 0 {
			t.Errorf("the oracle's regret is %v", *p.Regret)
		}
	}
	for _, want := range []string{"flexiflow", "thompson", "static-best", "oracle", "clairvoyant"} {
		if !names[want] {
			t.Errorf("no %s among %v", want, names)
		}
	}

	// --items replays a slice: the clairvoyant path is per item, so the
	// two halves' clairvoyant costs add up to the whole table's.
	clairvoyantSpent := func(args ...string) (spent float64, items int) {
		t.Helper()
		out, stderr, err := run(t, time.Minute, append([]string{"bench", "replay", "--table", table, "--seeds", "1", "--policies", "static-best", "--format", "json"}, args...)...)
		if err != nil {
			t.Fatalf("bench replay %v: %v\n%s", args, err, stderr)
		}
		var r struct {
			Table    string `json:"table"`
			Items    int    `json:"items"`
			Policies []struct {
				Name             string  `json:"name"`
				CostPerDelivered float64 `json:"cost_per_delivered"`
				DeliveryRate     float64 `json:"delivery_rate"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if len(args) > 0 && r.Table != "trap["+args[1]+"]" {
			t.Errorf("--items %s: table named %q", args[1], r.Table)
		}
		for _, p := range r.Policies {
			if p.Name == "clairvoyant" {
				return p.CostPerDelivered * p.DeliveryRate * float64(r.Items), r.Items
			}
		}
		t.Fatalf("no clairvoyant in %s", out)
		return 0, 0
	}
	whole, n := clairvoyantSpent()
	lo, na := clairvoyantSpent("--items", "0-11")
	hi, nb := clairvoyantSpent("--items", "12-29")
	if na != 12 || nb != 18 || n != 30 {
		t.Errorf("--items 0-11 and 12-29 of 30 items: %d and %d items", na, nb)
	}
	if math.Abs(lo+hi-whole) > 1e-6*whole {
		t.Errorf("clairvoyant cost: items 0-11 spend %.4f ms and 12-29 %.4f, together %.4f; the whole table %.4f", lo, hi, lo+hi, whole)
	}
	if _, stderr, err := run(t, time.Minute, "bench", "replay", "--table", table, "--items", "20-30"); err == nil || !strings.Contains(stderr, "--items 20-30: table trap has items 0-29, not 20-30") {
		t.Errorf("--items past the end: %v, %s", err, stderr)
	}

	// The live demo on the same 30 batches, priced with the table: the
	// models are deterministic, so the table agrees with every attempt.
	sj := filepath.Join(t.TempDir(), "summary.json")
	out, stderr, err = run(t, 2*time.Minute, "demo", "--workflow-trap", "--batches", "30", "--outcomes", table, "--summary-json", sj)
	if err != nil {
		t.Fatalf("demo --outcomes: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "the run's decisions priced with table trap") || !strings.Contains(out, "with each step's overhead_ms per attempt (5/5 ms") {
		t.Errorf("demo --outcomes does not print the priced run:\n%s", out)
	}
	b, err := os.ReadFile(sj)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Priced *struct {
			CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
			Delivered          int
			Disagreements      int
			Regret             float64
			References         []struct {
				Name               string
				CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
			}
			WithOverhead *struct {
				CostMsPerDelivered float64 `json:"cost_ms_per_delivered"`
			} `json:"with_overhead"`
			OverheadMs []float64 `json:"overhead_ms"`
		}
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	p := sum.Priced
	if p == nil || p.Delivered < 1 || p.Disagreements != 0 || len(p.References) != 3 || p.WithOverhead == nil || len(p.OverheadMs) != 2 {
		t.Fatalf("priced: %+v", p)
	}
	// Each step's every attempt costs 5 ms more, and a delivered batch
	// made at least one attempt at each of the two steps.
	if p.WithOverhead.CostMsPerDelivered < p.CostMsPerDelivered+10 {
		t.Errorf("with overheads %.3f ms per delivered batch, without %.3f: want at least 10 ms more", p.WithOverhead.CostMsPerDelivered, p.CostMsPerDelivered)
	}
	for _, r := range p.References {
		if r.Name == "oracle" && math.Abs(p.Regret-(p.CostMsPerDelivered/r.CostMsPerDelivered-1)) > 1e-9 {
			t.Errorf("regret %.4f, but %.3f against the oracle's %.3f", p.Regret, p.CostMsPerDelivered, r.CostMsPerDelivered)
		}
	}
	if _, stderr, err := run(t, time.Minute, "demo", "--batches", "31", "--outcomes", table); err == nil || !strings.Contains(stderr, "30 items, fewer than the 31 batches") {
		t.Errorf("a table shorter than the run: %v, %s", err, stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("item,step,upstream,model,passed,cost_ms\n0,a,,m,maybe,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, time.Minute, "bench", "replay", "--table", bad); err == nil || !strings.Contains(stderr, "bad.csv:2: passed \"maybe\": want true or false") {
		t.Errorf("a bad table: %v, %s", err, stderr)
	}
}
