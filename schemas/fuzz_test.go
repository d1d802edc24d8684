package schemas_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/flexiflow/flexiflow/schemas"
)

// fuzzRecord has a field of every kind a user's schema is likely to have.
const fuzzRecord = `{"type":"record","name":"Event","namespace":"flexiflow.fuzz","fields":[
 {"name":"id","type":"string"},
 {"name":"n","type":"int"},
 {"name":"big","type":"long"},
 {"name":"x","type":"double"},
 {"name":"f","type":"float"},
 {"name":"ok","type":"boolean"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"double"}},
 {"name":"note","type":["null","string"],"default":null},
 {"name":"raw","type":"bytes"}]}`

// FuzzBatchDecode feeds a step's batch decoder arbitrary bytes: it must
// refuse or accept them without panicking or exhausting memory, and a batch
// it accepts must encode and decode again to the same batch. The seeds are
// the shapes hostile input has taken: garbage, truncations, huge block
// counts, negative lengths, NaN and ±Inf, ints past 32 bits.
func FuzzBatchDecode(f *testing.F) {
	reg, err := schemas.NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	name, err := reg.Add(fuzzRecord)
	if err != nil {
		f.Fatal(err)
	}
	c, err := reg.BatchCodec(name)
	if err != nil {
		f.Fatal(err)
	}
	rec := func(x float64, n int32) map[string]any {
		return map[string]any{"id": "e1", "n": n, "big": int64(1 << 40), "x": x, "f": float32(x), "ok": true,
			"tags": []any{"a", "b"}, "attrs": map[string]any{"k": x}, "note": map[string]any{"string": "hi"}, "raw": []byte{0, 1}}
	}
	valid, err := c.Encode(nil, &schemas.Batch{ID: "b1", Workflow: "w", Step: "s", Attempt: 1, Tried: []string{"m"},
		Records: []map[string]any{rec(1.5, 7), rec(math.NaN(), -1), rec(math.Inf(1), math.MaxInt32), rec(math.Inf(-1), math.MinInt32)}})
	if err != nil {
		f.Fatal(err)
	}
	head := valid[:10] // the single-object header: magic and fingerprint
	f.Add(valid)
	for _, cut := range []int{0, 1, 2, 9, 10, 11, len(valid) / 2, len(valid) - 1} {
		f.Add(valid[:cut])
	}
	f.Add([]byte("{\"not\": \"avro\"}"))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(append(bytes.Clone(head), binary.AppendVarint(nil, math.MaxInt32)...))                 // a string length of 2^31-1
	f.Add(append(bytes.Clone(head), binary.AppendVarint(nil, -5)...))                            // a negative length
	f.Add(append(bytes.Clone(head), 2, 'b', 2, 'w', 2, 's', 2, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f)) // a block count of 2^31-1
	bigInt := append(bytes.Clone(head), 2, 'b', 2, 'w', 2, 's')
	bigInt = binary.AppendVarint(bigInt, 1<<40+5) // attempt is an int
	f.Add(bigInt)

	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := c.Decode(b)
		if err != nil {
			return
		}
		again, err := c.Encode(nil, got)
		if err != nil {
			t.Fatalf("a decoded batch does not encode again: %v", err)
		}
		back, err := c.Decode(again)
		if err != nil {
			t.Fatalf("a re-encoded batch does not decode: %v", err)
		}
		if fmt.Sprintf("%#v", back) != fmt.Sprintf("%#v", got) { // %#v: NaN equals NaN
			t.Fatalf("round trip changed the batch:\n%#v\n%#v", got, back)
		}
	})
}
