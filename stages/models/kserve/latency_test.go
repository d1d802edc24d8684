package kserve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
)

// directPy times the served model's own predict + predict_proba on the
// batch, in process, without a server: the "direct call" baseline.
const directPy = `
import json, sys, time, joblib, numpy as np
m = joblib.load(sys.argv[1]); x = np.array(json.load(sys.stdin), dtype=np.float64)
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); m.predict(x); m.predict_proba(x); ts.append(time.perf_counter() - t)
print(sorted(ts)[len(ts) // 2] * 1000)
`

// TestAdapterLatency measures, for one batch of 32 images, the median time
// of the served model's direct call (scikit-learn in process) and of a
// round trip through each adapter to the real MLServer, and logs the
// latency each adapter adds. Run it alone for the figures in docs/served-models.md:
//
//	go test -count=1 -v -run TestAdapterLatency ./stages/models/kserve/
func TestAdapterLatency(t *testing.T) {
	needServer(t)
	const calls = 300
	recs := testImages(t, 32)
	var pixels [][]float64
	for _, r := range recs {
		px, err := digits.Pixels(r)
		if err != nil {
			t.Fatal(err)
		}
		pixels = append(pixels, px)
	}
	in, _ := json.Marshal(pixels)
	py := filepath.Join(server.root, ".cache/mlserver/venv/bin/python")
	var table strings.Builder
	fmt.Fprintf(&table, "\nmedian of %d calls, batch of 32 images (ms)\n%-14s %8s %10s %10s %10s\n", calls, "model", "direct", "REST+JSON", "gRPC", "gRPC raw")
	fmt.Fprintf(&table, "%-14s %8s %10s %10s %10s\n", "", "", "(added)", "(added)", "(added)")
	for _, model := range []string{"digits-logreg", "digits-mlp"} {
		cmd := exec.Command(py, "-c", directPy, filepath.Join(server.root, ".cache/mlserver/models", model, "model.joblib"), strconv.Itoa(calls))
		cmd.Stdin = strings.NewReader(string(in))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("timing %s directly: %v\n%s", model, err, out)
		}
		direct, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			t.Fatalf("timing %s directly: %q", model, out)
		}
		fmt.Fprintf(&table, "%-14s %8.2f", model, direct)
		for _, via := range []struct {
			protocol string
			binary   bool
		}{{"rest", false}, {"grpc", false}, {"grpc", true}} {
			m, err := kserve.New(classifier("m", via.protocol, model, via.binary))
			if err != nil {
				t.Fatal(err)
			}
			ts := make([]time.Duration, 0, calls)
			for i := 0; i < calls+20; i++ {
				start := time.Now()
				if _, err := m.Predict(context.Background(), recs); err != nil {
					t.Fatal(err)
				}
				if i >= 20 { // warm connections first
					ts = append(ts, time.Since(start))
				}
			}
			m.Close()
			slices.Sort(ts)
			med := float64(ts[len(ts)/2].Microseconds()) / 1000
			fmt.Fprintf(&table, " %5.2f (%+.2f)", med, med-direct)
		}
		table.WriteString("\n")
	}
	t.Log(table.String())
}
