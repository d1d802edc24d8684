package kserve_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models/digits"
)

// TestTrainingDriftMatchesDemo: deploy/mlserver/train.py trains the served
// models on copies of the images corrupted like each phase of the demo's
// drift, with the schedule written out in Python. The drift test's verdict
// (logreg while clean, mlp once drifted) holds only while that copy equals
// digits.Schedule, so a change to either must show here.
func TestTrainingDriftMatchesDemo(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "deploy/mlserver/train.py"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(\w+)": dict\(fade=([0-9.]+), hot=([0-9.]+), noise=([0-9.]+)\)`)
	got := re.FindAllStringSubmatch(string(src), -1)
	want := digits.Schedule(3)
	if len(got) != len(want) {
		t.Fatalf("train.py PHASES has %d phases, the demo's schedule %d: %q", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		num := func(s string) float64 {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		if g[1] != w.Name || num(g[2]) != w.Fade || num(g[3]) != w.HotPixels || num(g[4]) != w.Noise {
			t.Errorf("train.py phase %d is %s; the demo's is %s fade=%g hot=%g noise=%g", i, g[0], w.Name, w.Fade, w.HotPixels, w.Noise)
		}
	}
}
