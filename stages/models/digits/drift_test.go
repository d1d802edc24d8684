package digits

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		total    int
		wantFrom []int
	}{
		{120, []int{0, 40, 80}},
		{100, []int{0, 34, 67}},
		{3, []int{0, 1, 2}},
		{1, []int{0, 1, 1}},
		{0, []int{0, 0, 0}},
		{-5, []int{0, 0, 0}},
	}
	for _, tt := range tests {
		phases := Schedule(tt.total)
		var names []string
		var from []int
		for _, p := range phases {
			names = append(names, p.Name)
			from = append(from, p.From)
		}
		if !slices.Equal(names, []string{"clean", "speckle", "storm"}) || !slices.Equal(from, tt.wantFrom) {
			t.Errorf("Schedule(%d) = %v from %v, want [clean speckle storm] from %v", tt.total, names, from, tt.wantFrom)
		}
	}
}

func TestPhaseAt(t *testing.T) {
	tests := []struct {
		index, total int
		want         string
	}{
		{0, 120, "clean"},
		{39, 120, "clean"},
		{40, 120, "speckle"},
		{79, 120, "speckle"},
		{80, 120, "storm"},
		{500, 120, "storm"},
		{0, 1, "clean"},
		{1, 2, "speckle"},
	}
	for _, tt := range tests {
		if got := PhaseAt(tt.index, tt.total).Name; got != tt.want {
			t.Errorf("PhaseAt(%d, %d) = %s, want %s", tt.index, tt.total, got, tt.want)
		}
	}
}

func TestMakeBatch(t *testing.T) {
	ds := mustLoad(t)
	const total, size = 30, 32
	for _, index := range []int{0, 15, 29} {
		phase, recs := ds.MakeBatch(rand.New(rand.NewPCG(7, uint64(index))), index, total, size)
		if phase != PhaseAt(index, total).Name {
			t.Errorf("batch %d: phase %s, want %s", index, phase, PhaseAt(index, total).Name)
		}
		if len(recs) != size {
			t.Fatalf("batch %d: %d records, want %d", index, len(recs), size)
		}
		for j, rec := range recs {
			if want := fmt.Sprintf("%d-%d", index, j); rec["id"] != want {
				t.Errorf("record id %v, want %s", rec["id"], want)
			}
			if l, ok := rec["label"].(int32); !ok || l < 0 || l > 9 {
				t.Errorf("record %d label %v, want an int32 digit", j, rec["label"])
			}
			checkImage(t, rec)
		}
		_, again := ds.MakeBatch(rand.New(rand.NewPCG(7, uint64(index))), index, total, size)
		for j := range recs {
			if !equalValues(recs[j]["pixels"], again[j]["pixels"]) {
				t.Fatalf("batch %d is not reproducible from its seed", index)
			}
		}
	}
	if _, recs := ds.MakeBatch(rand.New(rand.NewPCG(1, 1)), 0, total, 0); len(recs) != 0 {
		t.Errorf("a batch of size 0 has %d records", len(recs))
	}
}

// TestCleanBatchesAreTestImages checks that the clean phase sends test
// images unchanged.
func TestCleanBatchesAreTestImages(t *testing.T) {
	ds := mustLoad(t)
	recs, originals := ds.sample(rand.New(rand.NewPCG(3, 3)), Schedule(3)[0], 0, 16)
	for j, rec := range recs {
		px, err := Pixels(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(px, originals[j].Pixels[:]) || rec["label"] != int32(originals[j].Label) {
			t.Fatalf("clean record %d differs from its test image", j)
		}
	}
}

// TestCorruption checks each corruption in isolation on a blank and a full
// image, where its effect is known exactly.
func TestCorruption(t *testing.T) {
	full := slices.Repeat([]float64{MaxPixel}, NumPixels)
	blank := make([]float64, NumPixels)
	rng := rand.New(rand.NewPCG(5, 5))
	faded := Phase{Fade: 0.25}.Corrupt(rng, full)
	if faded[0] != 12 || faded[NumPixels-1] != 12 {
		t.Errorf("fading 16 by 0.25 gives %v, want 12", faded[0])
	}
	hot := Phase{HotPixels: 1}.Corrupt(rng, blank)
	if !slices.Equal(hot, full) {
		t.Errorf("HotPixels 1 leaves pixels below 16: %v", hot)
	}
	noisy := Phase{Noise: 8}.Corrupt(rng, blank)
	if slices.Min(noisy) < 0 || slices.Max(noisy) > MaxPixel || slices.Max(noisy) == 0 {
		t.Errorf("noise on a blank image gives %v, want values in (0, 16] after clipping", noisy)
	}
	if got := (Phase{}).Corrupt(rng, full); !slices.Equal(got, full) {
		t.Errorf("the zero phase changed the image")
	}
}
