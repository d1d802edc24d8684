package avrobin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// The schemas every differential test runs: every kind, named types in
// nested namespaces, references by short and full name, unions of named
// and anonymous types, and a recursive record.
var testSchemas = map[string]string{
	"blob": `{"type":"record","name":"Blob","namespace":"flexiflow.bench","fields":[
		{"name":"id","type":"string"},{"name":"payload","type":"bytes"}]}`,
	"digit": `{"type":"record","name":"DigitImage","namespace":"flexiflow.demo","fields":[
		{"name":"id","type":"string"},{"name":"label","type":"int"},
		{"name":"pixels","type":{"type":"array","items":"double"}}]}`,
	"everything": `{"type":"record","name":"All","namespace":"t.outer","fields":[
		{"name":"n","type":"null"},
		{"name":"b","type":"boolean"},
		{"name":"i","type":"int"},
		{"name":"l","type":"long"},
		{"name":"f","type":"float"},
		{"name":"d","type":{"type":"double"}},
		{"name":"by","type":"bytes"},
		{"name":"s","type":"string"},
		{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
		{"name":"e2","type":"Color"},
		{"name":"fx","type":{"type":"fixed","name":"Four","namespace":"t.other","size":4}},
		{"name":"fx2","type":"t.other.Four"},
		{"name":"arr","type":{"type":"array","items":{"type":"record","name":"Pt","fields":[
			{"name":"x","type":"float"},{"name":"tag","type":["null","string"]}]}}},
		{"name":"m","type":{"type":"map","values":["null","long","Pt"]}},
		{"name":"u","type":["null","int","string","Color","t.other.Four","Pt",{"type":"array","items":"int"},{"type":"map","values":"bytes"}]},
		{"name":"nested","type":{"type":"array","items":{"type":"array","items":["null","boolean"]}}},
		{"name":"list","type":{"type":"record","name":"Node","fields":[
			{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}}
	]}`,
}

func goavroCodec(t testing.TB, schema string) *goavro.Codec {
	t.Helper()
	g, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustCompile(t testing.TB, schema string) *Codec {
	t.Helper()
	c, err := Compile(schema)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gen builds a random native value of n's type, as goavro would decode it.
func gen(r *rand.Rand, n *node, depth int) any {
	switch n.kind {
	case kNull:
		return nil
	case kBool:
		return r.IntN(2) == 1
	case kInt:
		return []int32{0, 1, -1, 63, -64, 64, math.MaxInt32, math.MinInt32, r.Int32() - r.Int32()}[r.IntN(9)]
	case kLong:
		return []int64{0, -1, 1 << 40, math.MaxInt64, math.MinInt64, r.Int64() - r.Int64()}[r.IntN(6)]
	case kFloat:
		return []float32{0, -1.5, float32(math.Inf(1)), r.Float32()}[r.IntN(4)]
	case kDouble:
		return []float64{0, math.Copysign(0, -1), math.Inf(-1), math.MaxFloat64, r.NormFloat64()}[r.IntN(5)]
	case kBytes:
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	case kString:
		return strings.Repeat("ü", r.IntN(4)) + fmt.Sprint(r.IntN(1000))
	case kRecord:
		m := map[string]any{}
		for _, f := range n.fields {
			m[f.name] = gen(r, f.node, depth+1)
		}
		return m
	case kEnum:
		return n.symbols[r.IntN(len(n.symbols))]
	case kFixed:
		b := make([]byte, n.size)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	case kArray:
		k := r.IntN(4)
		if depth > 4 {
			k = 0
		}
		a := make([]any, k)
		for i := range a {
			a[i] = gen(r, n.items, depth+1)
		}
		return a
	case kMap:
		k := r.IntN(2) // at most one key: goavro writes keys in map order
		if depth > 4 {
			k = 0
		}
		m := map[string]any{}
		for i := range k {
			m[fmt.Sprint("k", i)] = gen(r, n.items, depth+1)
		}
		return m
	case kUnion:
		i := r.IntN(len(n.branches))
		if depth > 4 && n.null >= 0 {
			i = n.null
		}
		v := gen(r, n.branches[i], depth+1)
		if v == nil {
			return nil
		}
		return map[string]any{n.labels[i]: v}
	}
	panic("unknown kind")
}

// TestAgainstGoavro encodes random values with both codecs and checks the
// bytes are the same and decode, with both, to the value written.
func TestAgainstGoavro(t *testing.T) {
	for name, schema := range testSchemas {
		t.Run(name, func(t *testing.T) {
			g, c := goavroCodec(t, schema), mustCompile(t, schema)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 2000 {
				v := gen(r, c.root, 0)
				want, err := g.BinaryFromNative(nil, v)
				if err != nil {
					t.Fatalf("value %d: goavro: %v", i, err)
				}
				got, ok := c.Append([]byte("prefix"), v)
				if !ok {
					t.Fatalf("value %d: Append refused %#v", i, v)
				}
				if !bytes.Equal(got[6:], want) {
					t.Fatalf("value %d: Append wrote\n%x\ngoavro wrote\n%x", i, got[6:], want)
				}
				dec, rest, err := c.Decode(append(want, 0xAA))
				if err != nil || !bytes.Equal(rest, []byte{0xAA}) {
					t.Fatalf("value %d: Decode: rest %x, %v", i, rest, err)
				}
				gdec, _, err := g.NativeFromBinary(want)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(dec, gdec) {
					t.Fatalf("value %d: Decode gave\n%#v\ngoavro gave\n%#v", i, dec, gdec)
				}
			}
		})
	}
}

// TestMutatedInput flips, drops and inserts bytes in valid encodings:
// whatever Decode accepts, goavro accepts with the same value, and whatever
// goavro refuses, Decode refuses.
func TestMutatedInput(t *testing.T) {
	for name, schema := range testSchemas {
		t.Run(name, func(t *testing.T) {
			g, c := goavroCodec(t, schema), mustCompile(t, schema)
			r := rand.New(rand.NewPCG(3, 4))
			accepted, refused := 0, 0
			for range 3000 {
				valid, _ := c.Append(nil, gen(r, c.root, 0))
				b := mutate(r, valid)
				v, rest, err := c.Decode(b)
				crest, cerr := c.Check(b)
				if err == nil && (cerr != nil || len(crest) != len(rest)) {
					t.Fatalf("Decode accepted %x (%d left) but Check said %v (%d left)", b, len(rest), cerr, len(crest))
				}
				if err != nil && cerr == nil && !strings.Contains(err.Error(), "duplicate map key") {
					t.Fatalf("Check accepted %x that Decode refused: %v", b, err)
				}
				if err != nil {
					var de *DecodeError
					if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
						t.Fatalf("error %v is not a DecodeError with an offset inside the input", err)
					}
					refused++
					if strings.Contains(err.Error(), "do not fit") {
						continue // goavro would first try to allocate the declared count
					}
					if strings.Contains(err.Error(), "outside the 32-bit range") {
						continue // goavro truncates such an int; Decode refuses it
					}
					if gv, _, gerr := g.NativeFromBinary(b); gerr == nil {
						t.Fatalf("Decode refused %x (%v) but goavro decoded %#v", b, err, gv)
					}
					continue
				}
				accepted++
				gv, grest, gerr := g.NativeFromBinary(b)
				if gerr != nil {
					t.Fatalf("Decode accepted %x but goavro refused it: %v", b, gerr)
				}
				if fmt.Sprintf("%#v", v) != fmt.Sprintf("%#v", gv) || len(rest) != len(grest) { // (NaN != NaN for DeepEqual)
					t.Fatalf("%x: Decode gave %#v (%d left), goavro %#v (%d left)", b, v, len(rest), gv, len(grest))
				}
			}
			if accepted == 0 || refused == 0 {
				t.Fatalf("mutations should yield both valid and invalid inputs: %d accepted, %d refused", accepted, refused)
			}
		})
	}
}

func mutate(r *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	for range 1 + r.IntN(3) {
		switch op := r.IntN(4); {
		case len(b) == 0 || op == 0:
			b = append(b, byte(r.IntN(256)))
		case op == 1:
			b[r.IntN(len(b))] ^= byte(1 << r.IntN(8))
		case op == 2:
			b = b[:r.IntN(len(b))]
		default:
			i := r.IntN(len(b))
			b[i] = []byte{0x00, 0x01, 0x7f, 0x80, 0xff, 0x81}[r.IntN(6)]
		}
	}
	return b
}

// A declared count far beyond what the input holds is refused before any
// allocation: goavro would reserve the count up front.
func TestHugeBlockCountIsRefused(t *testing.T) {
	c := mustCompile(t, `{"type":"array","items":"long"}`)
	msg := AppendLong(nil, math.MaxInt32)
	_, _, err := c.Decode(msg)
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "do not fit") || de.Offset != 0 {
		t.Fatalf("got %v", err)
	}
	nulls := mustCompile(t, `{"type":"array","items":"null"}`)
	if _, _, err := nulls.Decode(AppendLong(nil, maxZeroWidth+1)); err == nil {
		t.Fatal("an array of more than maxZeroWidth nulls was accepted")
	}
	v, _, err := nulls.Decode(append(AppendLong(nil, 3), 0))
	if err != nil || len(v.([]any)) != 3 {
		t.Fatalf("three nulls: %v %v", v, err)
	}
}

func TestDecodeErrorNamesThePath(t *testing.T) {
	c := mustCompile(t, testSchemas["blob"])
	msg, _ := c.Append(nil, map[string]any{"id": "a", "payload": []byte("xyz")})
	_, _, err := c.Decode(msg[:len(msg)-1])
	if err == nil || !strings.Contains(err.Error(), ".payload at byte 2") || !strings.Contains(err.Error(), "short buffer") {
		t.Fatalf("got %v", err)
	}
	arr := mustCompile(t, `{"type":"array","items":`+testSchemas["blob"]+`}`)
	msg, _ = arr.Append(nil, []any{map[string]any{"id": "a", "payload": []byte{}}, map[string]any{"id": "b", "payload": []byte{}}})
	msg[4] = 0x03 // the second record's id says -2 bytes long
	if _, _, err := arr.Decode(msg); err == nil || !strings.Contains(err.Error(), "[1].id") || !strings.Contains(err.Error(), "negative length") {
		t.Fatalf("got %v", err)
	}
}

// Append refuses what it cannot write exactly as goavro would, leaving the
// buffer as it was, so the caller can fall back to goavro.
func TestAppendRefusesOtherGoTypes(t *testing.T) {
	c := mustCompile(t, testSchemas["digit"])
	for _, v := range []any{
		map[string]any{"id": "a", "label": 1.0, "pixels": []any{}},            // float64 for an int
		map[string]any{"id": "a", "label": int64(1 << 40), "pixels": []any{}}, // does not fit an int
		map[string]any{"id": "a", "pixels": []any{}},                          // missing field
		map[string]any{"id": "a", "label": 1, "pixels": []int{1}},             // slice type not handled
		"not a record",
	} {
		out, ok := c.Append([]byte("keep"), v)
		if ok || string(out) != "keep" {
			t.Errorf("Append(%#v) = %q, %v; want refused with the buffer unchanged", v, out, ok)
		}
	}
	out, ok := c.Append(nil, map[string]any{"id": "a", "label": 3, "pixels": []float64{1, 2}})
	want, err := goavroCodec(t, testSchemas["digit"]).BinaryFromNative(nil, map[string]any{"id": "a", "label": 3, "pixels": []float64{1, 2}})
	if !ok || err != nil || !bytes.Equal(out, want) {
		t.Fatalf("[]float64 pixels: %x %v, goavro %x %v", out, ok, want, err)
	}
}

func TestCompileRefuses(t *testing.T) {
	for schema, want := range map[string]string{
		`{"type":"long","logicalType":"timestamp-millis"}`:                                                ErrUnsupported.Error(),
		`{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"int","logicalType":"date"}}]}`: ErrUnsupported.Error(),
		`{"type":"record","name":"R","fields":[{"name":"x","type":"Nope"}]}`:                              `unknown type "Nope"`,
		`["int","int"]`: "two branches",
		`{"type":"enum","name":"E","symbols":[]}`: "no symbols",
		`not json`: "not valid JSON",
	} {
		if _, err := Compile(schema); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%s) = %v, want an error containing %q", schema, err, want)
		}
	}
}

// A record without a namespace of its own takes the enclosing one, which
// changes the key of its union branches.
func TestCompileInNamespace(t *testing.T) {
	rec := `{"type":"record","name":"R","fields":[{"name":"u","type":["null",{"type":"enum","name":"E","symbols":["A"]}]}]}`
	c, err := CompileIn("outer", rec)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := c.Decode([]byte{2, 0})
	if err != nil || !reflect.DeepEqual(v, map[string]any{"u": map[string]any{"outer.E": "A"}}) {
		t.Fatalf("got %#v, %v", v, err)
	}
}

func BenchmarkDecodeBlobBatch(b *testing.B) {
	schema := `{"type":"array","items":` + testSchemas["blob"] + `}`
	g, c := goavroCodec(b, schema), mustCompile(b, schema)
	recs := make([]any, 100)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprint("r", i), "payload": make([]byte, 1024)}
	}
	msg, _ := c.Append(nil, recs)
	b.Run("avrobin", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Decode(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := g.NativeFromBinary(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Check walks a value without building it: it allocates nothing.
func TestCheckAllocatesNothing(t *testing.T) {
	c := mustCompile(t, testSchemas["everything"])
	msg, ok := c.Append(nil, gen(rand.New(rand.NewPCG(5, 6)), c.root, 0))
	if !ok {
		t.Fatal("Append refused a generated value")
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.Check(msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Check allocated %v times per run", n)
	}
}

// blobBatch encodes n Blob records whose ids are idLen bytes long.
func blobBatch(t testing.TB, c *Codec, n, idLen int) ([]byte, []any) {
	t.Helper()
	recs := make([]any, n)
	for i := range recs {
		id := fmt.Sprintf("%0*d", idLen, i)
		recs[i] = map[string]any{"id": id, "payload": []byte{byte(i), 1, 2}}
	}
	msg, ok := c.Append(nil, recs)
	if !ok {
		t.Fatal("Append refused a batch of blobs")
	}
	return msg, recs
}

// Decoded strings are copies: overwriting the input (a reused fetch buffer,
// say) leaves them as they were, short ones from the arena's slabs and
// long ones alike; bytes fields alias the input, as documented.
func TestDecodedStringsOwnTheirBytes(t *testing.T) {
	c := mustCompile(t, `{"type":"array","items":`+testSchemas["blob"]+`}`)
	for _, idLen := range []int{0, 3, maxSlabbed, maxSlabbed + 1, 3 * maxText} {
		msg, want := blobBatch(t, c, 300, idLen)
		got, _, err := c.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range msg {
			msg[i] = 0xff
		}
		for i, r := range got.([]any) {
			if id, wantID := r.(map[string]any)["id"], want[i].(map[string]any)["id"]; id != wantID {
				t.Fatalf("id length %d: record %d's id became %.20q after the input changed, want %.20q", idLen, i, id, wantID)
			}
			if p := r.(map[string]any)["payload"].([]byte); p[0] != 0xff {
				t.Fatalf("id length %d: record %d's payload %v does not alias the input", idLen, i, p)
			}
		}
	}
}

// Values boxed from shared slabs survive garbage collections while other
// batches are decoded and dropped.
func TestArenaValuesSurviveGC(t *testing.T) {
	c := mustCompile(t, `{"type":"array","items":`+testSchemas["blob"]+`}`)
	msg, want := blobBatch(t, c, 200, 5)
	var kept []any
	for round := range 50 {
		v, _, err := c.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		if round%10 == 0 {
			kept = append(kept, v.([]any)[round]) // one record keeps its slabs alive
		}
		runtime.GC()
	}
	for k, r := range kept {
		if w := want[10*k]; !reflect.DeepEqual(r, w) {
			t.Errorf("kept record %d is %v after collections, want %v", 10*k, r, w)
		}
	}
}

// A batch's strings and byte slices are boxed from a few slabs: what is left
// is about the records' maps (two allocations each) and the array.
func TestDecodeBoxesFromSlabs(t *testing.T) {
	c := mustCompile(t, `{"type":"array","items":`+testSchemas["blob"]+`}`)
	msg, _ := blobBatch(t, c, 100, 8)
	n := testing.AllocsPerRun(50, func() {
		if _, _, err := c.Decode(msg); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2*100+20 {
		t.Errorf("decoding 100 blobs allocated %v times; boxing each value alone takes %d more", n, 3*100)
	}
}

// TestIntOutsideInt32IsRefused: goavro reads an int written as 2^40+5 as 5;
// Decode and Check refuse it, naming the field and the value.
func TestIntOutsideInt32IsRefused(t *testing.T) {
	c := mustCompile(t, `{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}`)
	v := int64(1<<40 + 5)
	b := binary.AppendVarint(nil, v) // Avro's zig-zag varint
	_, _, err := c.Decode(b)
	if err == nil || !strings.Contains(err.Error(), "1099511627781 is outside the 32-bit range") || !strings.Contains(err.Error(), "n") {
		t.Errorf("Decode: %v", err)
	}
	if _, err := c.Check(b); err == nil {
		t.Error("Check accepted an int outside the 32-bit range")
	}
	ok := binary.AppendVarint(nil, -1<<31)
	if got, _, err := c.Decode(ok); err != nil || got.(map[string]any)["n"] != int32(-1<<31) {
		t.Errorf("the least int32 decodes as %v, %v", got, err)
	}
}
