package avrobin

import "unsafe"

// arena holds the strings and byte slices one Decode boxes into interfaces.
// Boxing a string or a slice (any(s)) allocates a copy of its header, and a
// string its bytes too: three allocations for each record of a batch with
// one string and one bytes field, more than its map takes. The arena puts
// the headers in shared slabs and the short strings' bytes in a shared
// text slab, so a batch of a hundred records costs a handful of
// allocations instead of hundreds.
//
// Slabs are never written again once a value points into them, so the
// strings stay immutable; a slab lives as long as any value in it does.
type arena struct {
	text  []byte
	strs  []string
	bytes [][]byte
}

// Slabs start small, so that decoding one small value costs little, and
// double up to a bound.
const (
	minItems, maxItems = 8, 128
	minText, maxText   = 256, 8192
	maxSlabbed         = maxText / 32 // longer strings get their own allocation
)

// grow returns the capacity of the slab after one of capacity c.
func grow(c, lo, hi int) int { return min(max(2*c, lo), hi) }

// eface is the runtime's layout of an empty interface: a type word and a
// pointer to the value.
type eface struct {
	typ, data unsafe.Pointer
}

// boxString returns a string holding a copy of b, in an interface whose data
// word points into a slab.
func (a *arena) boxString(b []byte) any {
	var s string
	if len(b) == 0 {
		return ""
	} else if len(b) <= maxSlabbed {
		if cap(a.text)-len(a.text) < len(b) {
			a.text = make([]byte, 0, max(grow(cap(a.text), minText, maxText), len(b)))
		}
		off := len(a.text)
		a.text = append(a.text, b...)
		s = unsafe.String(&a.text[off], len(b))
	} else {
		s = string(b)
	}
	if len(a.strs) == cap(a.strs) {
		a.strs = make([]string, 0, grow(cap(a.strs), minItems, maxItems))
	}
	a.strs = append(a.strs, s)
	v := any("") // the string type word; a constant boxes without allocating
	(*eface)(unsafe.Pointer(&v)).data = unsafe.Pointer(&a.strs[len(a.strs)-1])
	return v
}

// boxBytes returns b itself (a slice of the input, not a copy), in an
// interface whose data word points into a slab.
func (a *arena) boxBytes(b []byte) any {
	if len(a.bytes) == cap(a.bytes) {
		a.bytes = make([][]byte, 0, grow(cap(a.bytes), minItems, maxItems))
	}
	a.bytes = append(a.bytes, b)
	v := any([]byte(nil)) // the []byte type word; nil boxes without allocating
	(*eface)(unsafe.Pointer(&v)).data = unsafe.Pointer(&a.bytes[len(a.bytes)-1])
	return v
}
