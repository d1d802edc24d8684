package digits

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/modeltest"
)

// TestConformance runs the shared model suite against every digits kind.
func TestConformance(t *testing.T) {
	ds := mustLoad(t)
	r := newRegistry(t, ds)
	for _, name := range append(append([]string{}, denoisers...), classifiers...) {
		t.Run(name, func(t *testing.T) {
			modeltest.Run(t, modeltest.Case{
				New: func(t *testing.T) models.Model { return mustModel(t, r, name, nil) },
				Records: func(n int) []models.Record {
					recs := make([]models.Record, n)
					for i := range recs {
						img := ds.Test()[i%len(ds.Test())]
						recs[i] = ImageRecord(fmt.Sprintf("r%d", i), img.Label, img.Pixels[:])
					}
					return recs
				},
				Answers:       func(in, out models.Record) bool { return in["id"] == out["id"] },
				Bad:           []models.Record{ImageRecord("ok", 1, make([]float64, NumPixels)), {"id": "b", "label": int32(2)}},
				BadWords:      []string{`record 1`, `"b"`, `missing field "pixels"`},
				Deterministic: true,
			})
		})
	}
}

// TestDocumentedDefaults: the defaults the reference prints are the
// package's default constants.
func TestDocumentedDefaults(t *testing.T) {
	r := newRegistry(t, mustLoad(t))
	for kind, want := range map[string]any{"digits.knn": &KNNConfig{K: DefaultK}, "digits.pca": &PCAConfig{Components: DefaultComponents}, "digits.median": &MedianConfig{Threshold: DefaultMedianThreshold}} {
		k, err := r.Kind(kind)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := k.Decode("m", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Value(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: defaults %+v, want %+v", kind, got, want)
		}
	}
}
