package avrobin

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// maxBlockCount is the largest block count an array or map may declare,
// as in goavro.
const maxBlockCount = math.MaxInt32

// maxZeroWidth bounds the items of an array or map whose items take no
// bytes at all (nulls): their count is not bounded by the input's length.
const maxZeroWidth = 1 << 20

// ErrShortBuffer means the input ended inside a value.
var ErrShortBuffer = errors.New("short buffer: the input ends inside a value")

// DecodeError says where in a value decoding failed.
type DecodeError struct {
	Path   string // field path from the root, as in .records[3].payload
	Offset int    // byte offset of the failing value in the input
	Err    error
}

func (e *DecodeError) Error() string {
	where := e.Path
	if where == "" {
		where = "value"
	}
	return fmt.Sprintf("cannot decode %s at byte %d: %v", where, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// fail starts a DecodeError at offset off.
func fail(off int, format string, args ...any) error {
	return &pathError{off: off, err: fmt.Errorf(format, args...)}
}

// intRange refuses an int past 32 bits: goavro truncates it (2^40+5 reads
// as 5), and a value silently changed is worse than a refused one.
func intRange(off int, v int64) error {
	if v != int64(int32(v)) {
		return fail(off, "int value %d is outside the 32-bit range of an Avro int (was it written as a long?)", v)
	}
	return nil
}

func short(off int) error { return &pathError{off: off, err: ErrShortBuffer} }

// pathError collects the path innermost first while the error travels up.
type pathError struct {
	path []string
	off  int
	err  error
}

func (e *pathError) Error() string { return e.err.Error() }

func within(err error, step string) error {
	if pe, ok := err.(*pathError); ok {
		pe.path = append(pe.path, step)
	}
	return err
}

func (e *pathError) finish() *DecodeError {
	p := slices.Clone(e.path)
	slices.Reverse(p)
	return &DecodeError{Path: strings.Join(p, ""), Offset: e.off, Err: e.err}
}

// Decode decodes one value from the start of buf and returns it with the
// bytes that follow it. Errors are *DecodeError.
func (c *Codec) Decode(buf []byte) (any, []byte, error) {
	var a arena
	v, i, err := c.root.decode(buf, 0, &a)
	if err != nil {
		return nil, nil, err.(*pathError).finish()
	}
	return v, buf[i:], nil
}

// readLong reads a zig-zag varint the way goavro does (it does not bound
// the varint's length; bits past the 64th are dropped).
func readLong(b []byte, i int) (int64, int, bool) {
	var v uint64
	var shift uint
	for ; i < len(b); i++ {
		c := b[i]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(v>>1) ^ -int64(v&1), i + 1, true
		}
		shift += 7
	}
	return 0, i, false
}

// readBytes returns the length-prefixed bytes at i, capped so that
// appending to them cannot overwrite what follows.
func readBytes(b []byte, i int) ([]byte, int, error) {
	n, j, ok := readLong(b, i)
	if !ok {
		return nil, 0, short(i)
	}
	if n < 0 {
		return nil, 0, fail(i, "negative length %d", n)
	}
	if n > int64(len(b)-j) {
		return nil, 0, fail(i, "length %d exceeds the %d bytes left (short buffer)", n, len(b)-j)
	}
	end := j + int(n)
	return b[j:end:end], end, nil
}

// blockCount reads an array's or map's block count (skipping the byte size
// a negative count carries) and checks that count items of at least w
// bytes each can fit in the bytes left (seen items came in earlier blocks).
func blockCount(b []byte, i int, w int, seen int) (int, int, error) {
	n, j, ok := readLong(b, i)
	if !ok {
		return 0, 0, short(i)
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, 0, fail(i, "invalid block count %d", n)
		}
		n = -n
		if _, j, ok = readLong(b, j); !ok {
			return 0, 0, short(j)
		}
	}
	if n > maxBlockCount {
		return 0, 0, fail(i, "block count %d exceeds %d", n, maxBlockCount)
	}
	if w > 0 {
		if n > int64((len(b)-j)/w) {
			return 0, 0, fail(i, "block count %d: %d items of at least %d bytes do not fit in the %d bytes left (short buffer)", n, n, w, len(b)-j)
		}
	} else if int64(seen)+n > maxZeroWidth {
		return 0, 0, fail(i, "more than %d items that take no bytes", maxZeroWidth)
	}
	return int(n), j, nil
}

func (n *node) decode(b []byte, i int, a *arena) (any, int, error) {
	switch n.kind {
	case kNull:
		return nil, i, nil
	case kBool:
		if i >= len(b) {
			return nil, 0, short(i)
		}
		switch b[i] {
		case 0:
			return false, i + 1, nil
		case 1:
			return true, i + 1, nil
		}
		return nil, 0, fail(i, "boolean byte is %d, not 0 or 1", b[i])
	case kInt:
		v, j, ok := readLong(b, i)
		if !ok {
			return nil, 0, short(i)
		}
		if err := intRange(i, v); err != nil {
			return nil, 0, err
		}
		return int32(v), j, nil
	case kLong:
		v, j, ok := readLong(b, i)
		if !ok {
			return nil, 0, short(i)
		}
		return v, j, nil
	case kFloat:
		if len(b)-i < 4 {
			return nil, 0, short(i)
		}
		u := uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
		return math.Float32frombits(u), i + 4, nil
	case kDouble:
		if len(b)-i < 8 {
			return nil, 0, short(i)
		}
		return math.Float64frombits(le64(b[i:])), i + 8, nil
	case kBytes:
		v, j, err := readBytes(b, i)
		if err != nil {
			return nil, 0, err
		}
		return a.boxBytes(v), j, nil
	case kString:
		v, j, err := readBytes(b, i)
		if err != nil {
			return nil, 0, err
		}
		return a.boxString(v), j, nil
	case kRecord:
		m := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			v, j, err := f.node.decode(b, i, a)
			if err != nil {
				return nil, 0, within(err, "."+f.name)
			}
			m[f.name], i = v, j
		}
		return m, i, nil
	case kEnum:
		idx, j, ok := readLong(b, i)
		if !ok {
			return nil, 0, short(i)
		}
		if idx < 0 || idx >= int64(len(n.symbols)) {
			return nil, 0, fail(i, "enum %s index %d is not between 0 and %d", n.name, idx, len(n.symbols)-1)
		}
		return n.symbols[idx], j, nil
	case kFixed:
		if len(b)-i < n.size {
			return nil, 0, short(i)
		}
		end := i + n.size
		return b[i:end:end], end, nil
	case kArray:
		return n.decodeArray(b, i, a)
	case kMap:
		return n.decodeMap(b, i, a)
	case kUnion:
		idx, j, ok := readLong(b, i)
		if !ok {
			return nil, 0, short(i)
		}
		if idx < 0 || idx >= int64(len(n.branches)) {
			return nil, 0, fail(i, "union branch %d is not between 0 and %d", idx, len(n.branches)-1)
		}
		v, j, err := n.branches[idx].decode(b, j, a)
		if err != nil {
			return nil, 0, within(err, "<"+n.labels[idx]+">")
		}
		if v == nil {
			return nil, j, nil
		}
		return map[string]any{n.labels[idx]: v}, j, nil
	}
	return nil, 0, fail(i, "unknown schema kind %d", n.kind)
}

func (n *node) decodeArray(b []byte, i int, a *arena) (any, int, error) {
	w := n.items.minSize
	count, i, err := blockCount(b, i, w, 0)
	if err != nil {
		return nil, 0, err
	}
	out := make([]any, 0, count)
	for count != 0 {
		for range count {
			v, j, err := n.items.decode(b, i, a)
			if err != nil {
				return nil, 0, within(err, fmt.Sprintf("[%d]", len(out)))
			}
			out, i = append(out, v), j
		}
		if count, i, err = blockCount(b, i, w, len(out)); err != nil {
			return nil, 0, err
		}
	}
	return out, i, nil
}

func (n *node) decodeMap(b []byte, i int, a *arena) (any, int, error) {
	w := 1 + n.items.minSize // a key takes at least its length byte
	count, i, err := blockCount(b, i, w, 0)
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string]any, count)
	for count != 0 {
		for range count {
			k, j, err := readBytes(b, i)
			if err != nil {
				return nil, 0, within(err, "{key}")
			}
			key := string(k)
			if _, dup := out[key]; dup {
				return nil, 0, fail(i, "duplicate map key %q", key)
			}
			v, j, err := n.items.decode(b, j, a)
			if err != nil {
				return nil, 0, within(err, fmt.Sprintf("[%q]", key))
			}
			out[key], i = v, j
		}
		if count, i, err = blockCount(b, i, w, len(out)); err != nil {
			return nil, 0, err
		}
	}
	return out, i, nil
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// Check reports whether buf starts with a well-formed value of the schema
// and returns the bytes after it, like Decode but without building the
// value: no allocation, whatever the value. Map keys are not checked for
// duplicates.
func (c *Codec) Check(buf []byte) ([]byte, error) {
	i, err := c.root.skip(buf, 0)
	if err != nil {
		return nil, err.(*pathError).finish()
	}
	return buf[i:], nil
}

// skip walks the value at i as decode does, building nothing.
func (n *node) skip(b []byte, i int) (int, error) {
	switch n.kind {
	case kNull:
		return i, nil
	case kBool:
		if i >= len(b) {
			return 0, short(i)
		}
		if b[i] > 1 {
			return 0, fail(i, "boolean byte is %d, not 0 or 1", b[i])
		}
		return i + 1, nil
	case kInt, kLong:
		v, j, ok := readLong(b, i)
		if !ok {
			return 0, short(i)
		}
		if n.kind == kInt {
			if err := intRange(i, v); err != nil {
				return 0, err
			}
		}
		return j, nil
	case kFloat, kDouble, kFixed:
		w := n.size
		switch n.kind {
		case kFloat:
			w = 4
		case kDouble:
			w = 8
		}
		if len(b)-i < w {
			return 0, short(i)
		}
		return i + w, nil
	case kBytes, kString:
		_, j, err := readBytes(b, i)
		return j, err
	case kRecord:
		for _, f := range n.fields {
			j, err := f.node.skip(b, i)
			if err != nil {
				return 0, within(err, "."+f.name)
			}
			i = j
		}
		return i, nil
	case kEnum:
		idx, j, ok := readLong(b, i)
		if !ok {
			return 0, short(i)
		}
		if idx < 0 || idx >= int64(len(n.symbols)) {
			return 0, fail(i, "enum %s index %d is not between 0 and %d", n.name, idx, len(n.symbols)-1)
		}
		return j, nil
	case kArray, kMap:
		return n.skipBlocks(b, i)
	case kUnion:
		idx, j, ok := readLong(b, i)
		if !ok {
			return 0, short(i)
		}
		if idx < 0 || idx >= int64(len(n.branches)) {
			return 0, fail(i, "union branch %d is not between 0 and %d", idx, len(n.branches)-1)
		}
		j, err := n.branches[idx].skip(b, j)
		if err != nil {
			return 0, within(err, "<"+n.labels[idx]+">")
		}
		return j, nil
	}
	return 0, fail(i, "unknown schema kind %d", n.kind)
}

// skipBlocks walks an array's or a map's blocks.
func (n *node) skipBlocks(b []byte, i int) (int, error) {
	w := n.items.minSize
	if n.kind == kMap {
		w++ // a key takes at least its length byte
	}
	count, i, err := blockCount(b, i, w, 0)
	if err != nil {
		return 0, err
	}
	for seen := 0; count != 0; {
		for range count {
			if n.kind == kMap {
				if _, i, err = readBytes(b, i); err != nil {
					return 0, within(err, "{key}")
				}
			}
			if i, err = n.items.skip(b, i); err != nil {
				return 0, within(err, fmt.Sprintf("[%d]", seen))
			}
			seen++
		}
		if count, i, err = blockCount(b, i, w, seen); err != nil {
			return 0, err
		}
	}
	return i, nil
}
