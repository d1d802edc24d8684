package event_test

import (
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/schemas/event"
)

const order = `{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"},
  {"name": "amount", "type": "double"},
  {"name": "items", "type": "int"},
  {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
  {"name": "note", "type": ["null", "string"], "default": null},
  {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["web", "shop"]}, "default": "web"},
  {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}], "default": null}
]}`

func TestJSONDecode(t *testing.T) {
	c, err := event.New(event.JSON, order, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Decode([]byte(`{"id": "o1", "amount": 12, "items": 3, "note": "gift", "address": {"city": "Lyon"}, "extra": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if rec["amount"] != 12.0 || rec["items"] != int32(3) || rec["kind"] != "web" || len(rec["tags"].([]any)) != 0 {
		t.Errorf("record %v", rec)
	}
	if n, ok := rec["note"].(map[string]any); !ok || n["string"] != "gift" {
		t.Errorf("note %v, want the union's native form", rec["note"])
	}
	if a, ok := rec["address"].(map[string]any); !ok || a["shop.Address"].(map[string]any)["city"] != "Lyon" {
		t.Errorf("address %v", rec["address"])
	}
	if _, ok := rec["extra"]; ok {
		t.Error("an extra field was kept")
	}
	out, err := c.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"note":"gift"`, `"city":"Lyon"`, `"items":3`, `"kind":"web"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded %s, want %s in it", out, want)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	lax, _ := event.New(event.JSON, order, false)
	strict, _ := event.New(event.JSON, order, true)
	cases := []struct {
		name  string
		c     *event.Codec
		value string
		want  string
	}{
		{"not JSON", lax, `{"id": `, "not JSON"},
		{"not an object", lax, `[1, 2]`, "want an object"},
		{"missing field", lax, `{"id": "o1", "items": 1}`, "field amount: missing; the schema requires it (double)"},
		{"wrong type", lax, `{"id": "o1", "amount": "12", "items": 1}`, `field amount: got the string "12", want a number (double)`},
		{"float in an int", lax, `{"id": "o1", "amount": 1, "items": 1.5}`, "field items: got the number 1.5, want an integer (int)"},
		{"NaN in an int", lax, `{"id": "o1", "amount": 1, "items": "NaN"}`, `field items: got the string "NaN", want an integer (int)`},
		{"int overflow", lax, `{"id": "o1", "amount": 1, "items": 3000000000}`, "field items: 3000000000 is outside an int's range"},
		{"bad enum", lax, `{"id": "o1", "amount": 1, "items": 1, "kind": "phone"}`, "field kind: got the string \"phone\", want one of [web shop]"},
		{"bad array item", lax, `{"id": "o1", "amount": 1, "items": 1, "tags": ["a", 2]}`, "field tags[1]: got the number 2, want a string"},
		{"null for a required field", lax, `{"id": null, "amount": 1, "items": 1}`, "field id: got null, want a string"},
		{"extra field, strict", strict, `{"id": "o1", "amount": 1, "items": 1, "x": 1, "a": 2}`, "fields a, x are not in the schema"},
		{"two values", lax, `{"id": "o1", "amount": 1, "items": 1} {}`, "more than one JSON value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Decode([]byte(tc.value))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !event.IsEventError(err) {
				t.Errorf("error %v, want an event error saying %q", err, tc.want)
			}
		})
	}
}

func TestAvro(t *testing.T) {
	j, _ := event.New(event.JSON, order, false)
	a, err := event.New(event.Avro, order, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := j.Decode([]byte(`{"id": "o1", "amount": 2.5, "items": 4, "note": null}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := a.Decode(b)
	if err != nil || back["id"] != "o1" || back["items"] != int32(4) || back["amount"] != 2.5 {
		t.Fatalf("round trip %v, %v", back, err)
	}
	if _, err := a.Decode(append([]byte{0, 0, 0, 0, 1}, b...)); err == nil || !event.IsEventError(err) {
		t.Errorf("framed bytes: %v, want an event error", err)
	}
}

// TestAvroHostileBlockCount: an event whose array claims billions of items
// in five bytes is refused as the event's fault; nothing tries to reserve
// the memory it claims.
func TestAvroHostileBlockCount(t *testing.T) {
	c, err := event.New(event.Avro, `{"type":"record","name":"R","fields":[{"name":"xs","type":{"type":"array","items":"long"}}]}`, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Decode([]byte{0xFE, 0xFF, 0xFF, 0xFF, 0x0F})
	if !event.IsEventError(err) {
		t.Fatalf("a block count of 2^31 items in five bytes: %v, want an event error", err)
	}
}
