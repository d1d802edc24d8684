package main

import (
	"encoding/csv"
	"encoding/json"
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

	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("item,step,upstream,model,passed,cost_ms\n0,a,,m,maybe,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, time.Minute, "bench", "replay", "--table", bad); err == nil || !strings.Contains(stderr, "bad.csv:2: passed \"maybe\": want true or false") {
		t.Errorf("a bad table: %v, %s", err, stderr)
	}
}
