package event_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/schemas/registry"
	"github.com/flexiflow/flexiflow/schemas/registry/registrytest"
)

// The reader schema: what a workflow's input_schema says.
const readerOrder = `{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"id","type":"string"},
 {"name":"amount","type":"double"},
 {"name":"qty","type":"long"},
 {"name":"country","type":"string","default":"DE"},
 {"name":"tier","type":{"type":"enum","name":"Tier","symbols":["FREE","GOLD","OTHER"],"default":"OTHER"},"default":"FREE"},
 {"name":"note","type":["null","string"],"default":null}]}`

// frame writes rec in Confluent framing with writer schema id.
func frame(t *testing.T, schema string, id int, rec map[string]any) []byte {
	t.Helper()
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	b, err = c.BinaryFromNative(b, rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConfluentResolution reads events written with other versions of the
// schema, registered in the real registry, as the reader schema: a field
// added with a default, one removed, numbers widened, an enum symbol the
// reader lacks, and the cases that must go to a dead letter.
func TestConfluentResolution(t *testing.T) {
	reg, err := registry.New(registry.Config{URL: registrytest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subject := registrytest.Subject("resolution")
	// Each version under its own subject: the registry may enforce
	// compatibility within one, and the incompatible cases are the point.
	register := func(schema string) int {
		t.Helper()
		id, err := reg.Register(ctx, registrytest.Subject("resolution-writer"), schema)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	codec, err := event.New(event.ConfluentAvro, readerOrder, false, event.WithRegistry(reg, subject))
	if err != nil {
		t.Fatal(err)
	}

	// One version ahead: qty written as int (widened to long), country
	// removed (the reader's default fills it), a new field with a default
	// (skipped), a tier symbol the reader lacks (the enum's default).
	v2 := `{"type":"record","name":"Order","namespace":"producer.v2","fields":[
	 {"name":"id","type":"string"},
	 {"name":"amount","type":"float"},
	 {"name":"qty","type":"int"},
	 {"name":"channel","type":"string","default":"web"},
	 {"name":"tier","type":{"type":"enum","name":"Tier","symbols":["FREE","GOLD","PLATINUM"]}},
	 {"name":"note","type":["null","string"],"default":null}]}`
	id2 := register(v2)
	got, err := codec.Decode(frame(t, v2, id2, map[string]any{"id": "o1", "amount": float32(2.5), "qty": int32(3), "channel": "app", "tier": "PLATINUM", "note": goavro.Union("string", "hi")}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "o1", "amount": float64(2.5), "qty": int64(3), "country": "DE", "tier": "OTHER", "note": map[string]any{"string": "hi"}}
	for k, v := range want {
		if g := got[k]; !equal(g, v) {
			t.Errorf("field %s = %#v (%T), want %#v (%T)", k, g, g, v, v)
		}
	}
	if _, ok := got["channel"]; ok {
		t.Error("the writer's extra field reached the record")
	}

	// The reader's own schema round-trips through Encode, framed with the
	// id it registers.
	out, err := codec.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 0 {
		t.Fatalf("Encode wrote magic byte %d", out[0])
	}
	back, err := codec.Decode(out)
	if err != nil || back["id"] != "o1" {
		t.Fatalf("decoding what Encode wrote: %v %v", back, err)
	}

	for _, c := range []struct {
		name, schema string
		rec          map[string]any
		want         string
	}{
		{"a reader field without default missing", `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"long"}]}`,
			map[string]any{"id": "o", "qty": int64(1)}, "incompatible with the reader schema shop.Order: field amount: the writer's schema lacks it"},
		{"a type that does not widen", `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"string"},{"name":"qty","type":"long"}]}`,
			map[string]any{"id": "o", "amount": "x", "qty": int64(1)}, "field amount: the writer's string cannot be read as the reader's double"},
	} {
		id := register(c.schema)
		_, err := codec.Decode(frame(t, c.schema, id, c.rec))
		if !event.IsEventError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an event error saying %q", c.name, err, c.want)
		}
	}
	unknown := frame(t, readerOrder, 1<<30, want)
	if _, err := codec.Decode(unknown); !event.IsEventError(err) || !strings.Contains(err.Error(), "not in the schema registry") {
		t.Errorf("an unknown id: %v", err)
	}
	if _, err := codec.Decode([]byte(`{"id":"o"}`)); !event.IsEventError(err) || !strings.Contains(err.Error(), "not Confluent framing") {
		t.Errorf("JSON on a confluent-avro topic: %v", err)
	}
	if _, err := codec.Decode(frame(t, v2, id2, map[string]any{"id": "o1", "amount": float32(2.5), "qty": int32(3), "channel": "app", "tier": "GOLD", "note": nil})[:9]); !event.IsEventError(err) {
		t.Errorf("a truncated body: %v", err)
	}

	// A registry that is down is not the event's fault.
	down, _ := registry.New(registry.Config{URL: "http://127.0.0.1:1"})
	dc, err := event.New(event.ConfluentAvro, readerOrder, false, event.WithRegistry(down, subject))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Decode(frame(t, v2, id2, map[string]any{"id": "o1", "amount": float32(2.5), "qty": int32(3), "channel": "app", "tier": "GOLD", "note": nil})); err == nil || event.IsEventError(err) {
		t.Errorf("registry down: %v, want an error that is not the event's", err)
	}
	if _, err := event.New(event.ConfluentAvro, readerOrder, false); err == nil || !strings.Contains(err.Error(), "--schema-registry") {
		t.Errorf("confluent-avro without a registry: %v", err)
	}
}

func equal(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if len(am) != len(bm) {
			return false
		}
		for k := range am {
			if !equal(am[k], bm[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}
