// Package avrobin compiles an Avro schema into a binary decoder and encoder
// specialised for it: the fast path under schemas' codecs.
//
// It reads and writes the same Go values as github.com/linkedin/goavro/v2
// ("native" form): a record is a map[string]any, int an int32, long an
// int64, float a float32, double a float64, bytes and fixed a []byte, string
// and enum a string, array a []any, map a map[string]any, and a union nil or
// a one-key map naming its branch ({"string": "x"}). Bytes come in, through
// Decode, as slices of the input buffer (no copy), strings as copies, arrays
// are sized once, and no length or index is boxed on the way; the strings
// and byte slices of one Decode are boxed into interfaces from a few shared
// slabs instead of one allocation each (arena.go), which takes a batch of a
// hundred records from 502 allocations to 212.
//
// Decode is authoritative: it accepts what goavro accepts and refuses what
// goavro refuses, with an error naming the field path, except that it never
// reserves more items than the input could hold (a corrupt block count
// cannot exhaust memory) nor more than a million items that take no bytes
// (nulls). Append handles the Go types a decoded value has; for any
// other value (a float64 for an int, a record missing a field that has a
// default) it returns ok == false and leaves the caller to encode with
// goavro, which converts what it can. Compile refuses, with ErrUnsupported,
// schemas whose values goavro converts (logical types), so their values stay
// with goavro; CompileLayout still compiles such a schema's layout, and its Check
// walks bytes without building values before goavro decodes them. (goavro reserves whatever
// block count a message declares: five bytes declaring 2^31-1 items make it
// ask for 32 GiB, and the process dies.)
package avrobin
