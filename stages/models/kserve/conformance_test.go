package kserve_test

import (
	"fmt"
	"testing"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/modeltest"
)

// TestConformance runs the shared model suite against a real MLServer,
// over REST and over gRPC (typed and raw binary contents).
func TestConformance(t *testing.T) {
	needServer(t)
	imgs := testImages(t, 64)
	for _, via := range []struct {
		protocol string
		binary   bool
	}{{kserve.ProtocolREST, false}, {kserve.ProtocolGRPC, false}, {kserve.ProtocolGRPC, true}} {
		t.Run(fmt.Sprintf("%s/binary=%v", via.protocol, via.binary), func(t *testing.T) {
			modeltest.Run(t, modeltest.Case{
				New: func(t *testing.T) models.Model {
					m, err := kserve.New(classifier("m", via.protocol, "digits-mlp", via.binary))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { m.Close() })
					return m
				},
				Records: func(n int) []models.Record {
					recs := make([]models.Record, n)
					for i := range recs {
						r := imgs[i%len(imgs)]
						recs[i] = digits.ImageRecord(fmt.Sprintf("r%d", i), int(r["label"].(int32)), toFloats(r["pixels"].([]any)))
					}
					return recs
				},
				Answers:       func(in, out models.Record) bool { return in["id"] == out["id"] },
				Bad:           []models.Record{imgs[0], {"id": "b", "label": int32(2)}},
				BadWords:      []string{`record 1 (id "b") has no field "pixels"`},
				Deterministic: true,
			})
		})
	}
}

func toFloats(xs []any) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i], _ = models.Number(x)
	}
	return out
}
