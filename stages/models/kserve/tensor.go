package kserve

import (
	"fmt"
	"math"
	"strings"

	"github.com/flexiflow/flexiflow/stages/models"
)

// tensor is the protocol-neutral form of one tensor: exactly one of F64,
// I64 and Str holds its data, flattened row-major.
type tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	F64      []float64 // FP16, FP32, FP64
	I64      []int64   // INT*, UINT*, BOOL (0/1)
	Str      []string  // BYTES
}

func (t *tensor) len() int {
	switch {
	case t.F64 != nil:
		return len(t.F64)
	case t.I64 != nil:
		return len(t.I64)
	}
	return len(t.Str)
}

func isFloat(dt string) bool { return strings.HasPrefix(dt, "FP") }

// buildInputs turns a batch into the input tensors the mapping names.
func buildInputs(ins []Input, recs []models.Record) ([]*tensor, error) {
	out := make([]*tensor, 0, len(ins))
	for _, in := range ins {
		t := &tensor{Name: in.Tensor, Datatype: in.Datatype}
		width := -1
		var flat []float64
		for i, rec := range recs {
			start := len(flat)
			for _, f := range in.Fields {
				v, ok := rec[f]
				if !ok {
					return nil, fmt.Errorf("input tensor %q: %s has no field %q", in.Tensor, describe(i, rec), f)
				}
				var err error
				if flat, err = appendNumbers(flat, v); err != nil {
					return nil, fmt.Errorf("input tensor %q: %s field %q: %w", in.Tensor, describe(i, rec), f, err)
				}
			}
			n := len(flat) - start
			if width < 0 {
				width = n
			} else if n != width {
				return nil, fmt.Errorf("input tensor %q: %s gives %d values but earlier records gave %d; every record must give the same number", in.Tensor, describe(i, rec), n, width)
			}
		}
		t.Shape = []int64{int64(len(recs)), int64(max(width, 0))}
		if isFloat(in.Datatype) {
			t.F64 = flat
		} else {
			t.I64 = make([]int64, len(flat))
			for j, f := range flat {
				if f != math.Trunc(f) {
					return nil, fmt.Errorf("input tensor %q is %s but value %d is %v, not a whole number", in.Tensor, in.Datatype, j, f)
				}
				t.I64[j] = int64(f)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func appendNumbers(dst []float64, v any) ([]float64, error) {
	switch x := v.(type) {
	case []any:
		for j, e := range x {
			f, ok := models.Number(e)
			if !ok {
				return dst, fmt.Errorf("element %d is %T, want a number", j, e)
			}
			dst = append(dst, f)
		}
		return dst, nil
	case []float64:
		return append(dst, x...), nil
	case bool:
		if x {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	}
	f, ok := models.Number(v)
	if !ok {
		return dst, fmt.Errorf("is %T, want a number or an array of numbers", v)
	}
	return append(dst, f), nil
}

// applyOutputs writes the mapped output tensors into out (one record per
// input record). A missing tensor, a wrong shape or a wrong element count
// is an error that names the tensor, what came and what was expected.
func applyOutputs(maps []Output, got []*tensor, out []models.Record) error {
	n := int64(len(out))
	for _, m := range maps {
		var t *tensor
		for _, g := range got {
			if g.Name == m.Tensor {
				t = g
			}
		}
		if t == nil {
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			return fmt.Errorf("the response has no output tensor %q (it has: %s); request an output the model has in outputs", m.Tensor, strings.Join(names, ", "))
		}
		elems := int64(1)
		for _, d := range t.Shape {
			elems *= d
		}
		if int64(t.len()) != elems {
			return fmt.Errorf("output tensor %q has shape %v (%d elements) but carries %d values", t.Name, t.Shape, elems, t.len())
		}
		if len(t.Shape) == 0 || t.Shape[0] != n {
			return fmt.Errorf("output tensor %q has shape %v, want %d rows (one per record of the batch)", t.Name, t.Shape, n)
		}
		width := elems / max(n, 1)
		if n == 0 {
			width = 0
		}
		switch m.Reduce {
		case ReduceNone:
			if !(len(t.Shape) == 1 || (len(t.Shape) == 2 && t.Shape[1] == 1)) {
				return fmt.Errorf("output tensor %q has shape %v, want [%d] or [%d 1] (one value per record) for field %q; map it with reduce: max, argmax or row, or pick another tensor", t.Name, t.Shape, n, n, m.Field)
			}
			for i := range out {
				out[i][m.Field] = t.value(i)
			}
		case ReduceMax, ReduceArgmax, ReduceRow:
			if len(t.Shape) != 2 || width == 0 {
				return fmt.Errorf("output tensor %q has shape %v, want [%d K] (a row per record) for field %q with reduce %s", t.Name, t.Shape, n, m.Field, m.Reduce)
			}
			if t.Str != nil && m.Reduce != ReduceRow {
				return fmt.Errorf("output tensor %q is BYTES; reduce %s needs numbers", t.Name, m.Reduce)
			}
			for i := range out {
				lo, hi := i*int(width), (i+1)*int(width)
				switch m.Reduce {
				case ReduceRow:
					row := make([]any, 0, width)
					for j := lo; j < hi; j++ {
						row = append(row, t.value(j))
					}
					out[i][m.Field] = row
				default:
					best, arg := math.Inf(-1), 0
					for j := lo; j < hi; j++ {
						v := t.float(j)
						if math.IsNaN(v) {
							return fmt.Errorf("output tensor %q row %d holds NaN", t.Name, i)
						}
						if v > best {
							best, arg = v, j-lo
						}
					}
					if m.Reduce == ReduceMax {
						if t.F64 != nil {
							out[i][m.Field] = best
						} else {
							out[i][m.Field] = int64(best)
						}
					} else {
						out[i][m.Field] = int64(arg)
					}
				}
			}
		}
	}
	return nil
}

// value is element j in goavro's native form: float64, int64 or string.
func (t *tensor) value(j int) any {
	switch {
	case t.F64 != nil:
		return t.F64[j]
	case t.I64 != nil:
		if t.Datatype == "BOOL" {
			return t.I64[j] != 0
		}
		return t.I64[j]
	}
	return t.Str[j]
}

func (t *tensor) float(j int) float64 {
	if t.F64 != nil {
		return t.F64[j]
	}
	return float64(t.I64[j])
}

func describe(i int, rec models.Record) string {
	if id, ok := rec["id"].(string); ok {
		return fmt.Sprintf("record %d (id %q)", i, id)
	}
	return fmt.Sprintf("record %d", i)
}
