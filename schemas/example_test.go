package schemas

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestExample makes records of schemas with every kind of field and
// checks that a batch of them encodes and decodes to the same records.
func TestExample(t *testing.T) {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	name, err := reg.Add(`{"type": "record", "name": "Everything", "namespace": "t", "fields": [
		{"name": "id", "type": "string"},
		{"name": "n", "type": "int"}, {"name": "l", "type": "long"},
		{"name": "f", "type": "float"}, {"name": "d", "type": "double"},
		{"name": "ok", "type": "boolean"}, {"name": "raw", "type": "bytes"},
		{"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
		{"name": "again", "type": "Kind"},
		{"name": "tags", "type": {"type": "array", "items": "string"}},
		{"name": "scores", "type": {"type": "map", "values": "double"}},
		{"name": "maybe", "type": ["null", "string"], "default": null},
		{"name": "either", "type": ["int", "string"]},
		{"name": "where", "type": {"type": "record", "name": "Where", "fields": [{"name": "x", "type": "double"}]}},
		{"name": "fix", "type": {"type": "fixed", "name": "Four", "size": 4}}
	]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.BatchCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var recs []map[string]any
	for i := range 3 {
		rec, err := c.Example(i, r)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if recs[2]["id"] != "id-2" || recs[0]["kind"] != "A" || recs[0]["again"] != "A" || recs[0]["maybe"] != nil {
		t.Errorf("records: %v", recs[0])
	}
	b, err := c.Encode(nil, &Batch{ID: "b", Workflow: "w", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Records) != 3 || back.Records[1]["id"] != "id-1" {
		t.Errorf("decoded %v", back.Records)
	}
	// A logical type is refused with what to do.
	name, err = reg.Add(`{"type": "record", "name": "When", "namespace": "t", "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err = reg.BatchCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Example(0, r); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("a logical type: %v, want an error that says to give records with --from", err)
	}
}
