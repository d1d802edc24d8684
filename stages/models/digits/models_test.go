package digits

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
)

var (
	denoisers   = []string{"digits.passthrough", "digits.median", "digits.pca"}
	classifiers = []string{"digits.centroid", "digits.mlp", "digits.knn"}
)

func newRegistry(t testing.TB, ds *Dataset) *models.Registry {
	t.Helper()
	r := models.NewRegistry()
	Register(r, ds)
	return r
}

func mustModel(t testing.TB, r *models.Registry, name string, opts map[string]any) models.Model {
	t.Helper()
	m, err := r.New(name, opts)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return m
}

// testRecords returns the first n test images as image records.
func testRecords(ds *Dataset, n int) []models.Record {
	recs := make([]models.Record, n)
	for i := range recs {
		img := ds.Test()[i]
		recs[i] = ImageRecord("t-"+string(rune('a'+i)), img.Label, img.Pixels[:])
	}
	return recs
}

func TestRegisterNames(t *testing.T) {
	r := newRegistry(t, mustLoad(t))
	want := slices.Sorted(slices.Values(append(slices.Clone(denoisers), classifiers...)))
	if got := r.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
}

func TestModelsAnswerEveryRecord(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	in := testRecords(ds, 5)
	in[1]["pixels"] = ds.Test()[1].Pixels[:] // []float64 is accepted too
	for _, name := range append(slices.Clone(denoisers), classifiers...) {
		t.Run(name, func(t *testing.T) {
			out, err := mustModel(t, r, name, nil).Predict(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("got %d records for %d", len(out), len(in))
			}
			for i, o := range out {
				if o["id"] != in[i]["id"] || o["label"] != in[i]["label"] {
					t.Errorf("record %d: id/label %v/%v, want %v/%v", i, o["id"], o["label"], in[i]["id"], in[i]["label"])
				}
				if slices.Contains(denoisers, name) {
					checkImage(t, o)
				} else {
					checkPrediction(t, o)
				}
			}
		})
	}
}

func checkImage(t *testing.T, rec models.Record) {
	t.Helper()
	px, ok := rec["pixels"].([]any)
	if !ok || len(px) != NumPixels {
		t.Fatalf("pixels = %T of length %d, want []any of %d", rec["pixels"], len(px), NumPixels)
	}
	for j, p := range px {
		v, ok := p.(float64)
		if !ok || v < 0 || v > MaxPixel {
			t.Fatalf("pixel %d = %T %v, want a float64 in [0, 16]", j, p, p)
		}
	}
	if len(rec) != 3 {
		t.Errorf("image record has fields %v, want id, label, pixels", slices.Sorted(mapsKeys(rec)))
	}
}

func checkPrediction(t *testing.T, rec models.Record) {
	t.Helper()
	p, ok1 := rec["predicted"].(int32)
	c, ok2 := rec["confidence"].(float64)
	if !ok1 || !ok2 || p < 0 || p > 9 || !(c >= 0 && c <= 1) {
		t.Fatalf("prediction %v, want predicted int32 0..9 and confidence float64 in [0, 1]", rec)
	}
	if len(rec) != 4 {
		t.Errorf("prediction record has fields %v, want id, label, predicted, confidence", slices.Sorted(mapsKeys(rec)))
	}
}

func mapsKeys(r models.Record) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range r {
			if !yield(k) {
				return
			}
		}
	}
}

// TestModelsIgnoreLabel checks that no model reads the label: changing or
// removing it changes nothing else in the output.
func TestModelsIgnoreLabel(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	base := testRecords(ds, 4)
	relabelled := testRecords(ds, 4)
	unlabelled := testRecords(ds, 4)
	for i := range relabelled {
		relabelled[i]["label"] = int32(9 - i)
		delete(unlabelled[i], "label")
	}
	for _, name := range append(slices.Clone(denoisers), classifiers...) {
		m := mustModel(t, r, name, nil)
		want, _ := m.Predict(context.Background(), base)
		for _, in := range [][]models.Record{relabelled, unlabelled} {
			got, err := m.Predict(context.Background(), in)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i := range got {
				for _, k := range []string{"pixels", "predicted", "confidence"} {
					if !equalValues(got[i][k], want[i][k]) {
						t.Errorf("%s record %d: %s changed with the label", name, i, k)
					}
				}
			}
		}
	}
}

func equalValues(a, b any) bool {
	as, ok1 := a.([]any)
	bs, ok2 := b.([]any)
	if ok1 && ok2 {
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestBadInputIsAnError(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	short := make([]any, NumPixels-1)
	for i := range short {
		short[i] = 0.0
	}
	withString := slices.Clone(toAny(ds.Test()[0].Pixels[:]))
	withString[5] = "five"
	withNaN := slices.Clone(toAny(ds.Test()[0].Pixels[:]))
	withNaN[7] = math.NaN()
	tests := []struct {
		name    string
		rec     models.Record
		wantErr string
	}{
		{"missing pixels", models.Record{"id": "x", "label": int32(1)}, `missing field "pixels"`},
		{"nil pixels", models.Record{"id": "x", "pixels": nil}, "want a list of 64 numbers"},
		{"pixels not a list", models.Record{"id": "x", "pixels": "0,0,0"}, "is string"},
		{"too few pixels", models.Record{"id": "x", "pixels": short}, "has 63 values, want 64"},
		{"too many pixels", models.Record{"id": "x", "pixels": make([]float64, 65)}, "has 65 values, want 64"},
		{"non-numeric pixel", models.Record{"id": "x", "pixels": withString}, "pixel 5 is string"},
		{"NaN pixel", models.Record{"id": "x", "pixels": withNaN}, "pixel 7 is NaN"},
	}
	for _, name := range append(slices.Clone(denoisers), classifiers...) {
		m := mustModel(t, r, name, nil)
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				in := append(testRecords(ds, 2), tt.rec)
				out, err := m.Predict(context.Background(), in)
				if err == nil || out != nil {
					t.Fatalf("Predict = %d records, %v; want an error", len(out), err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `record 2 (id "x")`) {
					t.Fatalf("error %q, want it to name record 2 and mention %q", err, tt.wantErr)
				}
			})
		}
	}
}

func TestPredictHonoursContext(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range append(slices.Clone(denoisers), classifiers...) {
		if _, err := mustModel(t, r, name, nil).Predict(ctx, testRecords(ds, 3)); err == nil {
			t.Errorf("%s: Predict with a cancelled context succeeded", name)
		}
	}
}

func TestOptions(t *testing.T) {
	r := newRegistry(t, mustLoad(t))
	tests := []struct {
		model   string
		opts    map[string]any
		wantErr string
	}{
		{"digits.pca", map[string]any{"components": 5}, ""},
		{"digits.pca", map[string]any{"components": int64(64)}, ""},
		{"digits.pca", map[string]any{"components": 8.0}, ""},
		{"digits.pca", map[string]any{"components": uint64(12)}, ""},
		{"digits.pca", map[string]any{"components": 0}, "out of range 1..64"},
		{"digits.pca", map[string]any{"components": 65}, "out of range 1..64"},
		{"digits.pca", map[string]any{"components": 2.5}, "got `2.5`, want an integer"},
		{"digits.pca", map[string]any{"components": "ten"}, "want an integer"},
		{"digits.pca", map[string]any{"k": 3}, `unknown key "k"; keys here: components`},
		{"digits.knn", map[string]any{"k": 1}, ""},
		{"digits.knn", map[string]any{"k": 0}, "out of range 1..1198"},
		{"digits.median", map[string]any{"threshold": 4}, ""},
		{"digits.median", map[string]any{"threshold": -1.0}, "out of range 0..16"},
		{"digits.median", map[string]any{"threshold": true}, "want a number"},
		{"digits.passthrough", map[string]any{"gain": 2}, `unknown key "gain"; this takes no keys`},
		{"digits.centroid", nil, ""},
		{"digits.mlp", map[string]any{"hidden": 64, "epochs": 3}, `unknown key "epochs"`},
	}
	for _, tt := range tests {
		_, err := r.New(tt.model, tt.opts)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s %v: %v", tt.model, tt.opts, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s %v: error %v, want it to mention %q", tt.model, tt.opts, err, tt.wantErr)
		}
	}
}

// accuracy is the fraction of imgs the classifier labels correctly.
func accuracy(t *testing.T, m models.Model, imgs []Image) float64 {
	t.Helper()
	in := make([]models.Record, len(imgs))
	for i, img := range imgs {
		in[i] = ImageRecord("a", img.Label, img.Pixels[:])
	}
	out, err := m.Predict(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, o := range out {
		if o["predicted"] == int32(imgs[i].Label) {
			n++
		}
	}
	return float64(n) / float64(len(imgs))
}

func TestAccuracyOnCleanTestSplit(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	tests := []struct {
		model string
		opts  map[string]any
		min   float64
	}{
		{"digits.centroid", nil, 0.85},
		{"digits.mlp", nil, 0.93},
		{"digits.knn", nil, 0.96},
		{"digits.knn", map[string]any{"k": 1}, 0.96},
	}
	for _, tt := range tests {
		acc := accuracy(t, mustModel(t, r, tt.model, tt.opts), ds.Test())
		t.Logf("%s %v: accuracy %.3f on the %d clean test images", tt.model, tt.opts, acc, len(ds.Test()))
		if acc < tt.min {
			t.Errorf("%s %v: accuracy %.3f, want >= %.2f", tt.model, tt.opts, acc, tt.min)
		}
	}
}

// TestDenoisersKeepCleanImages checks that on clean input the denoisers
// barely change the image: small squared error, and a classifier reading
// their output stays accurate.
func TestDenoisersKeepCleanImages(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	in := make([]models.Record, len(ds.Test()))
	for i, img := range ds.Test() {
		in[i] = ImageRecord("c", img.Label, img.Pixels[:])
	}
	knn := mustModel(t, r, "digits.knn", nil)
	tests := []struct {
		model   string
		maxMSE  float64
		minKNN  float64
		options map[string]any
	}{
		{"digits.passthrough", 0, 0.96, nil},
		{"digits.median", 4, 0.96, nil},
		{"digits.pca", 3, 0.96, nil},
		{"digits.pca", 1e-9, 0.96, map[string]any{"components": 64}},
	}
	for _, tt := range tests {
		out, err := mustModel(t, r, tt.model, tt.options).Predict(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		sq := 0.0
		for i, o := range out {
			px, _ := Pixels(o)
			sq += sqDist(px, ds.Test()[i].Pixels[:])
		}
		mse := sq / float64(len(out)*NumPixels)
		classified, err := knn.Predict(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		correct := 0
		for i, o := range classified {
			if o["predicted"] == int32(ds.Test()[i].Label) {
				correct++
			}
		}
		acc := float64(correct) / float64(len(out))
		t.Logf("%s %v: mse %.3f, knn accuracy on its output %.3f", tt.model, tt.options, mse, acc)
		if mse > tt.maxMSE || acc < tt.minKNN {
			t.Errorf("%s %v: mse %.3f (want <= %g), knn accuracy %.3f (want >= %.2f)", tt.model, tt.options, mse, tt.maxMSE, acc, tt.minKNN)
		}
	}
}

func TestSwitchingMedianRemovesStuckPixels(t *testing.T) {
	img := make([]float64, NumPixels)
	img[2*Side+3] = MaxPixel // a hot pixel on a blank background
	for r := range Side {
		img[r*Side+5], img[r*Side+6] = 9, 9 // a faded vertical stroke ...
	}
	img[4*Side+6] = 0 // ... with a dead pixel in it
	got := switchingMedian(DefaultMedianThreshold)(img)
	want := slices.Clone(img)
	want[2*Side+3] = 0
	want[4*Side+6] = 9
	if !slices.Equal(got, want) {
		t.Fatalf("switchingMedian =\n%v\nwant\n%v", got, want)
	}
}

func TestMedian9(t *testing.T) {
	tests := [][9]float64{
		{1, 2, 3, 4, 5, 6, 7, 8, 9},
		{9, 8, 7, 6, 5, 4, 3, 2, 1},
		{0, 0, 0, 0, 16, 16, 16, 16, 16},
		{5, 5, 5, 5, 5, 5, 5, 5, 5},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var w [9]float64
		for i := range w {
			w[i] = float64(rng.IntN(5))
		}
		tests = append(tests, w)
	}
	for _, w := range tests {
		sorted := slices.Clone(w[:])
		slices.Sort(sorted)
		if got := median9(&w); got != sorted[4] {
			t.Fatalf("median9(%v) = %v, want %v", w, got, sorted[4])
		}
	}
}

func TestPCAVarianceIsOrdered(t *testing.T) {
	b, err := mustLoad(t).pcaBasis()
	if err != nil {
		t.Fatal(err)
	}
	total, top := 0.0, 0.0
	for i, v := range b.variances {
		if i > 0 && v > b.variances[i-1]+1e-9 {
			t.Fatalf("variance %d (%g) exceeds variance %d (%g)", i, v, i-1, b.variances[i-1])
		}
		total += v
		if i < DefaultComponents {
			top += v
		}
	}
	t.Logf("the top %d of 64 components explain %.1f%% of the training variance", DefaultComponents, 100*top/total)
	if top/total < 0.85 {
		t.Errorf("the top %d components explain %.2f of the variance, want >= 0.85", DefaultComponents, top/total)
	}
}

// TestTrainingIsCached checks that models train once per Dataset, however
// many times and from however many goroutines they are built, and that
// training is deterministic across Datasets.
func TestTrainingIsCached(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, name := range append(slices.Clone(denoisers), classifiers...) {
				if _, err := r.New(name, nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b1, _ := ds.pcaBasis()
	b2, _ := ds.pcaBasis()
	mlp1, mlp2 := ds.mlpParams(), ds.mlpParams()
	c1, c2 := ds.centroidParams(), ds.centroidParams()
	if mlp1 != mlp2 || c1 != c2 || b1 != b2 {
		t.Error("a second build retrained a model")
	}
	other := mustLoad(t)
	if ds.mlpParams().temperature != other.mlpParams().temperature || ds.mlpParams().w1[3][17] != other.mlpParams().w1[3][17] {
		t.Error("MLP training is not deterministic")
	}
}

func BenchmarkModels(b *testing.B) {
	ds, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	r := newRegistry(b, ds)
	phases := Schedule(3)
	for _, name := range append(slices.Clone(denoisers), classifiers...) {
		m := mustModel(b, r, name, nil)
		for _, p := range phases {
			recs, _ := ds.sample(rand.New(rand.NewPCG(1, 2)), p, 0, 32)
			b.Run(name+"/"+p.Name, func(b *testing.B) {
				for b.Loop() {
					if _, err := m.Predict(context.Background(), recs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
