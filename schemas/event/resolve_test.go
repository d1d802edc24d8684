package event

import (
	"encoding/json"
	"testing"
	"time"
)

func set(t *testing.T, schema string) *schemaSet {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(schema), &root); err != nil {
		t.Fatal(err)
	}
	return newSchemaSet(root)
}

// TestResolutionRules: the cases where a first-match reading of Avro's
// rules goes wrong.
func TestResolutionRules(t *testing.T) {
	for _, c := range []struct {
		name           string
		writer, reader string
		in             map[string]any
		field          string
		want           any
	}{
		{"a field's own name before an alias",
			`{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"b","type":"string","aliases":["a"]}]}`,
			map[string]any{"a": "A", "b": "B"}, "b", "B"},
		{"a long into a union with long stays a long",
			`{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"n","type":["null","double","long"]}]}`,
			map[string]any{"n": int64(9007199254740993)}, "n", map[string]any{"long": int64(9007199254740993)}},
		{"a logical type's branch",
			`{"type":"record","name":"R","fields":[{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}`,
			`{"type":"record","name":"R","fields":[{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}`,
			map[string]any{"ts": map[string]any{"long.timestamp-millis": time.UnixMilli(1700000000000).UTC()}}, "ts",
			map[string]any{"long.timestamp-millis": time.UnixMilli(1700000000000).UTC()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, r := set(t, c.writer), set(t, c.reader)
			out, err := convert(w, r, w.root, r.root, c.in, "", "", "", true)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(map[string]any)[c.field]
			if gb, _ := json.Marshal(got); string(gb) != mustJSON(t, c.want) {
				t.Errorf("%s = %#v, want %#v", c.field, got, c.want)
			}
		})
	}
	w := set(t, `{"type":"record","name":"R","fields":[{"name":"u","type":["null","string"]}]}`)
	if _, err := convert(w, w, w.root, w.root, map[string]any{"u": map[string]any{"int": int32(1)}}, "", "", "", true); err == nil {
		t.Error("a union value of no writer branch was read as null")
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBytesAsAvroJSON: JSON events carry bytes one character per byte, as
// Avro's JSON encoding does, both ways.
func TestBytesAsAvroJSON(t *testing.T) {
	c, err := New(JSON, `{"type":"record","name":"R","fields":[{"name":"b","type":"bytes"},{"name":"f","type":{"type":"fixed","name":"F","size":1},"default":"\u00ff"}]}`, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Decode([]byte(`{"b": "\u00ff\u0001"}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := rec["b"].([]byte); len(b) != 2 || b[0] != 0xFF || b[1] != 1 {
		t.Errorf("bytes %v, want [255 1]", b)
	}
	if f := rec["f"].([]byte); len(f) != 1 || f[0] != 0xFF {
		t.Errorf("fixed default %v, want [255]", f)
	}
	out, err := c.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"b":"ÿ\u0001","f":"ÿ"}` {
		t.Errorf("encoded %s", out)
	}
	if _, err := c.Decode([]byte(`{"b": "€"}`)); !IsEventError(err) {
		t.Errorf("a character past U+00FF in bytes: %v", err)
	}
}
