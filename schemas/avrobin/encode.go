package avrobin

import (
	"math"
	"slices"
)

// Append appends the binary encoding of v to buf. It returns ok == false,
// and buf as it was, when v holds a Go value of a type a decoded value
// would not have, or that does not fit the schema; encode such values with
// goavro, which converts what it can and says what does not fit.
func (c *Codec) Append(buf []byte, v any) ([]byte, bool) {
	out, ok := c.root.encode(buf, v)
	if !ok {
		return buf, false
	}
	return out, true
}

// AppendLong appends a zig-zag varint long.
func AppendLong(buf []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		buf = append(buf, byte(u)|0x80)
		u >>= 7
	}
	return append(buf, byte(u))
}

// AppendString appends a length-prefixed string.
func AppendString(buf []byte, s string) []byte {
	return append(AppendLong(buf, int64(len(s))), s...)
}

// AppendBytes appends length-prefixed bytes.
func AppendBytes(buf []byte, b []byte) []byte {
	return append(AppendLong(buf, int64(len(b))), b...)
}

// AppendDouble appends a little-endian IEEE 754 double.
func AppendDouble(buf []byte, f float64) []byte {
	u := math.Float64bits(f)
	return append(buf, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
}

func (n *node) encode(b []byte, v any) ([]byte, bool) {
	switch n.kind {
	case kNull:
		return b, v == nil
	case kBool:
		x, ok := v.(bool)
		if !ok {
			return b, false
		}
		if x {
			return append(b, 1), true
		}
		return append(b, 0), true
	case kInt:
		var x int32
		switch t := v.(type) {
		case int32:
			x = t
		case int:
			if x = int32(t); int(x) != t {
				return b, false
			}
		case int64:
			if x = int32(t); int64(x) != t {
				return b, false
			}
		default:
			return b, false
		}
		return AppendLong(b, int64(x)), true
	case kLong:
		switch t := v.(type) {
		case int64:
			return AppendLong(b, t), true
		case int:
			return AppendLong(b, int64(t)), true
		case int32:
			return AppendLong(b, int64(t)), true
		}
		return b, false
	case kFloat:
		var f float32
		switch t := v.(type) {
		case float32:
			f = t
		case float64:
			f = float32(t)
		default:
			return b, false
		}
		u := math.Float32bits(f)
		return append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24)), true
	case kDouble:
		switch t := v.(type) {
		case float64:
			return AppendDouble(b, t), true
		case float32:
			return AppendDouble(b, float64(t)), true
		}
		return b, false
	case kBytes, kString:
		switch t := v.(type) {
		case []byte:
			return AppendBytes(b, t), true
		case string:
			return AppendString(b, t), true
		}
		return b, false
	case kRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return b, false
		}
		for _, f := range n.fields {
			fv, ok := m[f.name]
			if !ok {
				return b, false // goavro fills in the field's default, if it has one
			}
			if b, ok = f.node.encode(b, fv); !ok {
				return b, false
			}
		}
		return b, true
	case kEnum:
		s, ok := v.(string)
		if !ok {
			return b, false
		}
		i := slices.Index(n.symbols, s)
		if i < 0 {
			return b, false
		}
		return AppendLong(b, int64(i)), true
	case kFixed:
		switch t := v.(type) {
		case []byte:
			return append(b, t...), len(t) == n.size
		case string:
			return append(b, t...), len(t) == n.size
		}
		return b, false
	case kArray:
		return n.encodeArray(b, v)
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return b, false
		}
		if len(m) > 0 {
			b = AppendLong(b, int64(len(m)))
			for k, x := range m {
				b = AppendString(b, k)
				if b, ok = n.items.encode(b, x); !ok {
					return b, false
				}
			}
		}
		return append(b, 0), true
	case kUnion:
		if v == nil {
			if n.null < 0 {
				return b, false
			}
			return AppendLong(b, int64(n.null)), true
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return b, false
		}
		for label, x := range m {
			i := slices.Index(n.labels, label)
			if i < 0 {
				return b, false
			}
			return n.branches[i].encode(AppendLong(b, int64(i)), x)
		}
	}
	return b, false
}

// encodeArray writes one block holding every item, then the end marker,
// as goavro does.
func (n *node) encodeArray(b []byte, v any) ([]byte, bool) {
	switch t := v.(type) {
	case []any:
		return appendItems(n.items, b, t)
	case []map[string]any:
		return appendItems(n.items, b, t)
	case []float64:
		if n.items.kind == kDouble { // no boxing of every element
			if len(t) > 0 {
				b = AppendLong(b, int64(len(t)))
				for _, x := range t {
					b = AppendDouble(b, x)
				}
			}
			return append(b, 0), true
		}
		return appendItems(n.items, b, t)
	case []string:
		return appendItems(n.items, b, t)
	}
	return b, false
}

func appendItems[T any](item *node, b []byte, items []T) ([]byte, bool) {
	if len(items) > 0 {
		b = AppendLong(b, int64(len(items)))
		var ok bool
		for _, x := range items {
			if b, ok = item.encode(b, x); !ok {
				return b, false
			}
		}
	}
	return append(b, 0), true
}
