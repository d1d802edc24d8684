package schemas

import (
	"fmt"
	"sort"
)

// Batch is one Kafka record's worth of records on its way through a step.
type Batch struct {
	ID          string
	Workflow    string
	Step        string   // the step Attempt and Tried refer to
	Attempt     int      // attempts made at Step so far
	Tried       []string // models tried at Step, in order
	CreatedAtMs int64
	Records     []map[string]any
	// Events, for a batch a workflow's source made, says where each
	// record came from (one per record, in order); empty otherwise.
	Events []Event
	// Served lists step=model for each step that passed the batch on.
	Served []string
	// StepCostMs is what the attempts at Step have cost so far.
	StepCostMs float64
	// Spent is, per step that passed the batch on, what it took there.
	Spent []Spent
}

// Spent is what one step took to pass a batch on.
type Spent struct {
	Step     string
	Model    string
	Attempts int
	CostMs   float64
	AtMs     int64
}

// Event is where one record of a batch came from: the source event's
// key (nil when it had none), headers and position.
type Event struct {
	Key       []byte
	Headers   []Header
	Topic     string
	Partition int32
	Offset    int64
	// Input, when the workflow's sink includes inputs, is the record the
	// first step read, in the Avro binary encoding of its input schema.
	Input []byte
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// BatchCodec encodes and decodes batches of one record type.
type BatchCodec struct {
	*Codec
	Record string // full name of the record schema
	// RecordSchema is the record schema's JSON.
	RecordSchema string
	// Numeric names the record's numeric fields (int, long, float, double)
	// and arrays of numbers, sorted: the fields a trace summarizes.
	Numeric []string
	// Fields maps each field of the record to its kind (KindNumber, …),
	// for checking assertions when a workflow is loaded.
	Fields map[string]string
}

// Field kinds, as assertions (CEL) see a record's fields.
const (
	KindNumber = "number" // int, long, float, double
	KindString = "string" // string, enum
	KindBool   = "bool"
	KindOther  = "" // anything else: bytes, arrays, maps, records, unions, logical types
)

// kindOf is the kind of an Avro field type.
func kindOf(t any) string {
	if m, ok := t.(map[string]any); ok {
		if _, logical := m["logicalType"]; logical {
			return KindOther // goavro turns these into times and decimals
		}
		if m["type"] == "enum" {
			return KindString
		}
		t = m["type"]
	}
	switch t {
	case "int", "long", "float", "double":
		return KindNumber
	case "string":
		return KindString
	case "boolean":
		return KindBool
	}
	return KindOther
}

// fieldKinds maps each field of a record schema to its kind.
func fieldKinds(record any) map[string]string {
	out := map[string]string{}
	fields, _ := record.(map[string]any)["fields"].([]any)
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		if name, _ := fm["name"].(string); name != "" {
			out[name] = kindOf(fm["type"])
		}
	}
	return out
}

// numericFields lists a record schema's numeric and array-of-numeric
// fields, sorted.
func numericFields(record any) []string {
	isNumber := func(t any) bool { return kindOf(t) == KindNumber }
	var out []string
	fields, _ := record.(map[string]any)["fields"].([]any)
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		name, _ := fm["name"].(string)
		t := fm["type"]
		if arr, ok := t.(map[string]any); ok && arr["type"] == "array" {
			t = arr["items"]
		}
		if name != "" && isNumber(t) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Encode appends the single-object encoding of b to buf.
func (c *BatchCodec) Encode(buf []byte, b *Batch) ([]byte, error) {
	native := map[string]any{
		"batch_id":      b.ID,
		"workflow":      b.Workflow,
		"step":          b.Step,
		"attempt":       int32(b.Attempt),
		"tried":         b.Tried,
		"created_at_ms": b.CreatedAtMs,
		"records":       b.Records,
		"events":        eventsNative(b.Events),
		"served":        stringsOrEmpty(b.Served),
		"step_cost_ms":  b.StepCostMs,
		"spent":         spentNative(b.Spent),
	}
	out, err := c.Codec.Encode(buf, native)
	if err != nil {
		return nil, fmt.Errorf("encoding batch %s as %s: %w", b.ID, c.Record, err)
	}
	return out, nil
}

// Decode decodes one message. It returns ErrNotSingleObject for bytes that
// are not single-object encoded, and an error wrapping ErrUnknownSchema for a
// message written with another schema.
func (c *BatchCodec) Decode(msg []byte) (*Batch, error) {
	fp, err := Fingerprint(msg)
	if err != nil {
		return nil, err
	}
	if fp != c.fingerprint {
		return nil, fmt.Errorf("%w %#016x: this step reads batches of %s (fingerprint %#016x); produce with that schema or point the step at the schema you write",
			ErrUnknownSchema, fp, c.Record, c.fingerprint)
	}
	v, err := c.decodeBody(msg[10:])
	if err != nil {
		return nil, fmt.Errorf("malformed Avro body for %s: %w", c.Record, err)
	}
	m := v.(map[string]any)
	b := &Batch{
		ID:          m["batch_id"].(string),
		Workflow:    m["workflow"].(string),
		Step:        m["step"].(string),
		Attempt:     int(m["attempt"].(int32)),
		CreatedAtMs: m["created_at_ms"].(int64),
	}
	for _, t := range m["tried"].([]any) {
		b.Tried = append(b.Tried, t.(string))
	}
	recs := m["records"].([]any)
	b.Records = make([]map[string]any, len(recs))
	for i, r := range recs {
		b.Records[i] = r.(map[string]any)
	}
	if evs, _ := m["events"].([]any); len(evs) > 0 {
		b.Events = make([]Event, len(evs))
		for i, e := range evs {
			b.Events[i] = eventFromNative(e.(map[string]any))
		}
	}
	for _, s := range asList(m["served"]) {
		b.Served = append(b.Served, s.(string))
	}
	b.StepCostMs, _ = m["step_cost_ms"].(float64)
	for _, x := range asList(m["spent"]) {
		sm := x.(map[string]any)
		b.Spent = append(b.Spent, Spent{Step: sm["step"].(string), Model: sm["model"].(string), Attempts: int(sm["attempts"].(int32)),
			CostMs: sm["cost_ms"].(float64), AtMs: sm["at_ms"].(int64)})
	}
	return b, nil
}

func spentNative(sp []Spent) []any {
	out := make([]any, len(sp))
	for i, s := range sp {
		out[i] = map[string]any{"step": s.Step, "model": s.Model, "attempts": int32(s.Attempts), "cost_ms": s.CostMs, "at_ms": s.AtMs}
	}
	return out
}

func eventsNative(evs []Event) []any {
	out := make([]any, len(evs))
	for i, e := range evs {
		var key any
		if e.Key != nil {
			key = map[string]any{"bytes": e.Key}
		}
		hs := make([]any, len(e.Headers))
		for j, h := range e.Headers {
			hs[j] = map[string]any{"key": h.Key, "value": h.Value}
		}
		var input any
		if e.Input != nil {
			input = map[string]any{"bytes": e.Input}
		}
		out[i] = map[string]any{"key": key, "headers": hs, "topic": e.Topic, "partition": e.Partition, "offset": e.Offset, "input": input}
	}
	return out
}

func eventFromNative(m map[string]any) Event {
	e := Event{Topic: m["topic"].(string), Partition: m["partition"].(int32), Offset: m["offset"].(int64)}
	if k, ok := m["key"].(map[string]any); ok {
		e.Key, _ = k["bytes"].([]byte)
		if e.Key == nil {
			e.Key = []byte{}
		}
	}
	if in, ok := m["input"].(map[string]any); ok {
		e.Input, _ = in["bytes"].([]byte)
	}
	for _, h := range asList(m["headers"]) {
		hm := h.(map[string]any)
		v, _ := hm["value"].([]byte)
		e.Headers = append(e.Headers, Header{Key: hm["key"].(string), Value: v})
	}
	return e
}

func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func asList(v any) []any { l, _ := v.([]any); return l }
