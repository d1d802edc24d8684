package schemas

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// Example builds record i of a made-up stream of the codec's record
// type: every field gets a value of its type (strings are the field's
// name and i, numbers drawn from r, enums their first symbol, optional
// fields null), so a workflow can be fed without data of its own (plan
// validate).
func (c *BatchCodec) Example(i int, r *rand.Rand) (map[string]any, error) {
	var schema any
	if err := json.Unmarshal([]byte(c.RecordSchema), &schema); err != nil {
		return nil, err
	}
	g := exampler{named: map[string]any{}, r: r, i: i}
	v, err := g.value(schema, c.Record)
	if err != nil {
		return nil, fmt.Errorf("making an example %s: %w", c.Record, err)
	}
	m, _ := v.(map[string]any)
	return m, nil
}

type exampler struct {
	named map[string]any
	r     *rand.Rand
	i     int
}

func (g *exampler) value(t any, field string) (any, error) {
	switch x := t.(type) {
	case string:
		switch x {
		case "null":
			return nil, nil
		case "boolean":
			return g.r.IntN(2) == 0, nil
		case "int":
			return int32(g.r.IntN(1000)), nil
		case "long":
			return int64(g.r.IntN(1_000_000)), nil
		case "float":
			return float32(g.r.Float64()), nil
		case "double":
			return g.r.Float64(), nil
		case "string":
			return fmt.Sprintf("%s-%d", field, g.i), nil
		case "bytes":
			return []byte(fmt.Sprintf("%s-%d", field, g.i)), nil
		}
		if def, ok := g.named[x]; ok {
			return g.value(def, field)
		}
		return nil, fmt.Errorf("field %s: type %q is not defined before it is used", field, x)
	case []any: // a union: null if it may be, else its first branch
		for _, b := range x {
			if b == "null" {
				return nil, nil
			}
		}
		if len(x) == 0 {
			return nil, fmt.Errorf("field %s: an empty union", field)
		}
		v, err := g.value(x[0], field)
		if err != nil {
			return nil, err
		}
		return map[string]any{branchName(x[0]): v}, nil
	case map[string]any:
		if lt, _ := x["logicalType"].(string); lt != "" {
			return nil, fmt.Errorf("field %s: logical type %s: give records of your own with --from", field, lt)
		}
		name, _ := x["name"].(string)
		if ns, _ := x["namespace"].(string); ns != "" && name != "" {
			g.named[ns+"."+name] = x
		}
		if name != "" {
			g.named[name] = x
		}
		switch x["type"] {
		case "record":
			out := map[string]any{}
			fields, _ := x["fields"].([]any)
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				fname, _ := fm["name"].(string)
				v, err := g.value(fm["type"], fname)
				if err != nil {
					return nil, err
				}
				out[fname] = v
			}
			return out, nil
		case "enum":
			syms, _ := x["symbols"].([]any)
			if len(syms) == 0 {
				return nil, fmt.Errorf("field %s: an enum without symbols", field)
			}
			return syms[0], nil
		case "array":
			v, err := g.value(x["items"], field)
			if err != nil {
				return nil, err
			}
			return []any{v}, nil
		case "map":
			v, err := g.value(x["values"], field)
			if err != nil {
				return nil, err
			}
			return map[string]any{"k": v}, nil
		case "fixed":
			size, _ := x["size"].(float64)
			return make([]byte, int(size)), nil
		default:
			return g.value(x["type"], field)
		}
	}
	return nil, fmt.Errorf("field %s: unknown type %v", field, t)
}

func branchName(t any) string {
	switch x := t.(type) {
	case string:
		return x
	case map[string]any:
		if n, _ := x["name"].(string); n != "" {
			if ns, _ := x["namespace"].(string); ns != "" {
				return ns + "." + n
			}
			return n
		}
		s, _ := x["type"].(string)
		return s
	}
	return ""
}
