package digits

import (
	"context"
	"fmt"
	"math"

	"github.com/flexiflow/flexiflow/stages/models"
)

// ImageRecord returns the record form of an image: id, label and pixels
// ([]any of float64), as goavro decodes a flexiflow.demo.DigitImage.
func ImageRecord(id string, label int, pixels []float64) models.Record {
	return models.Record{"id": id, "label": int32(label), "pixels": toAny(pixels)}
}

// Pixels extracts and checks a record's pixels: exactly NumPixels finite
// numbers, given as []any (goavro's native form) or []float64. It never
// reads the label.
func Pixels(rec models.Record) ([]float64, error) {
	raw, ok := rec["pixels"]
	if !ok {
		return nil, fmt.Errorf("missing field \"pixels\"")
	}
	var px []float64
	switch v := raw.(type) {
	case []float64:
		px = append([]float64(nil), v...)
	case []any:
		px = make([]float64, len(v))
		for i, e := range v {
			f, ok := models.Number(e)
			if !ok {
				return nil, fmt.Errorf("pixel %d is %T (%v), want a number", i, e, e)
			}
			px[i] = f
		}
	default:
		return nil, fmt.Errorf("field \"pixels\" is %T, want a list of %d numbers", raw, NumPixels)
	}
	if len(px) != NumPixels {
		return nil, fmt.Errorf("field \"pixels\" has %d values, want %d (an 8x8 image, row-major)", len(px), NumPixels)
	}
	for i, f := range px {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("pixel %d is %v, want a finite number", i, f)
		}
	}
	return px, nil
}

func toAny(xs []float64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// clip limits every pixel to [0, MaxPixel], in place.
func clip(px []float64) []float64 {
	for i, v := range px {
		px[i] = min(max(v, 0), MaxPixel)
	}
	return px
}

// carry starts an output record with the input's id and label, copied
// untouched (the label is carried for evaluation, never read).
func carry(in models.Record) models.Record {
	out := models.Record{}
	for _, k := range []string{"id", "label"} {
		if v, ok := in[k]; ok {
			out[k] = v
		}
	}
	return out
}

// describe names a record in error messages.
func describe(i int, rec models.Record) string {
	if id, ok := rec["id"].(string); ok {
		return fmt.Sprintf("record %d (id %q)", i, id)
	}
	return fmt.Sprintf("record %d", i)
}

// perImage adapts a function over one image's pixels to models.Model: it
// validates every record, stops when ctx is done, and builds one output
// record per input record, in order.
type perImage func(px []float64, out models.Record)

func (f perImage) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	out := make([]models.Record, len(in))
	for i, rec := range in {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		px, err := Pixels(rec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(i, rec), err)
		}
		o := carry(rec)
		f(px, o)
		out[i] = o
	}
	return out, nil
}
