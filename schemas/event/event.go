// Package event converts single events between the formats users' topics
// hold (JSON objects, or the Avro binary encoding of a record) and the
// native records of one Avro record schema that steps, models and CEL see.
//
// An event enters as a Kafka record value and leaves as a record
// (map[string]any in goavro's native form: int32, int64, float32, float64,
// string, []byte, bool, nil, []any, map[string]any, and unions as a
// one-key map naming the branch), or an *Error that says which field is
// wrong and what was expected. Encoding goes the other way.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/flexiflow/flexiflow/schemas"
)

// Formats a Codec reads and writes.
const (
	JSON = "json"
	Avro = "avro"
	// ConfluentAvro is the Avro binary encoding framed as Confluent's
	// serializers write it: a zero magic byte, the writer schema's 4-byte
	// big-endian registry id, then the body. Reading needs a Registry.
	ConfluentAvro = "confluent-avro"
)

// Error is an event that does not fit the schema: Field is the path of the
// wrong field ("" for the whole event).
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return "field " + e.Field + ": " + e.Msg
}

// Codec reads and writes the events of one record schema in one format.
type Codec struct {
	format string
	strict bool
	root   any            // the record schema, parsed
	named  map[string]any // named types by full name
	avro   *schemas.Binary
	name   string
	schema string // the record schema's JSON

	confluent *confluent // confluent-avro only
}

// Option configures a Codec.
type Option func(*Codec)

// WithRegistry gives a confluent-avro codec its schema registry and the
// subject its Encode registers the schema under (TopicNameStrategy:
// "<topic>-value").
func WithRegistry(r Registry, subject string) Option {
	return func(c *Codec) { c.confluent = &confluent{reg: r, subject: subject, writers: map[int]*writer{}} }
}

// New returns a codec for events of the record schema (JSON) in format.
// A strict codec refuses fields the schema does not have; otherwise they
// are dropped.
func New(format, schemaJSON string, strict bool, opts ...Option) (*Codec, error) {
	var root any
	if err := json.Unmarshal([]byte(schemaJSON), &root); err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	c := &Codec{format: format, strict: strict, root: root, named: map[string]any{}, schema: schemaJSON}
	for _, o := range opts {
		o(c)
	}
	c.collect(root, "")
	if m, ok := root.(map[string]any); ok {
		c.name = fullName(m, "")
	}
	switch format {
	case JSON:
	case Avro, ConfluentAvro:
		a, err := schemas.NewBinary(schemaJSON)
		if err != nil {
			return nil, err
		}
		c.avro = a
		if format == ConfluentAvro && c.confluent == nil {
			return nil, errors.New("format confluent-avro needs a schema registry: give --schema-registry http://host:8081 (or FLEXIFLOW_SCHEMA_REGISTRY)")
		}
	default:
		return nil, fmt.Errorf("event format %q is not known; use json, avro or confluent-avro", format)
	}
	return c, nil
}

// Format is the codec's format.
func (c *Codec) Format() string { return c.format }

// Decode reads one event. An *Error is the event's fault; for
// confluent-avro any other error is the registry failing to answer, and
// the same event may be read once it does.
func (c *Codec) Decode(value []byte) (map[string]any, error) {
	if c.format == ConfluentAvro {
		return c.decodeConfluent(value)
	}
	if c.format == Avro {
		v, rest, err := c.avro.Decode(value)
		if err != nil {
			return nil, &Error{Msg: fmt.Sprintf("not the Avro binary encoding of %s: %v", c.name, err)}
		}
		if len(rest) > 0 {
			return nil, &Error{Msg: fmt.Sprintf("%d bytes left over after one %s record: is it framed (a schema registry's magic byte and id)?", len(rest), c.name)}
		}
		return v.(map[string]any), nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("not JSON: %v", err)}
	}
	if dec.More() {
		return nil, &Error{Msg: "more than one JSON value in one event; write one object per record"}
	}
	v, err := c.fromJSON(c.root, raw, "", "")
	if err != nil {
		return nil, err
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Msg: fmt.Sprintf("got %s, want a JSON object of %s", describe(raw), c.name)}
	}
	return rec, nil
}

// Encode writes one record. For confluent-avro the first call registers
// the schema (see Prepare).
func (c *Codec) Encode(rec map[string]any) ([]byte, error) {
	if c.format == ConfluentAvro {
		return c.encodeConfluent(rec)
	}
	if c.format == Avro {
		return c.avro.Append(nil, rec)
	}
	return json.Marshal(c.toJSON(c.root, rec, ""))
}

// JSONValue is rec as plain JSON values (unions unwrapped, bytes as
// strings), for a codec of any format.
func (c *Codec) JSONValue(rec map[string]any) any { return c.toJSON(c.root, rec, "") }

func (c *Codec) collect(t any, ns string) {
	switch x := t.(type) {
	case []any:
		for _, b := range x {
			c.collect(b, ns)
		}
	case map[string]any:
		switch x["type"] {
		case "record", "enum", "fixed":
			name := fullName(x, ns)
			c.named[name] = x
			if i := strings.LastIndex(name, "."); i > 0 {
				ns = name[:i]
			}
			for _, f := range asList(x["fields"]) {
				c.collect(f.(map[string]any)["type"], ns)
			}
		case "array":
			c.collect(x["items"], ns)
		case "map":
			c.collect(x["values"], ns)
		}
	}
}

// resolve looks a named type up, and returns the namespace names inside
// t are relative to.
func (c *Codec) resolve(t any, ns string) (any, string) {
	if s, ok := t.(string); ok && !primitive(s) {
		if n, ok := c.named[s]; ok {
			t = n
		} else if n, ok := c.named[ns+"."+s]; ok {
			t = n
		}
	}
	if m, ok := t.(map[string]any); ok && (m["type"] == "record" || m["type"] == "enum" || m["type"] == "fixed") {
		if full := fullName(m, ns); strings.Contains(full, ".") {
			ns = full[:strings.LastIndex(full, ".")]
		}
	}
	return t, ns
}

// fromJSON converts a JSON value (json.Number for numbers) to the native
// value of Avro type t.
func (c *Codec) fromJSON(t, v any, path, ns string) (any, error) {
	t, ns = c.resolve(t, ns)
	bad := func(format string, args ...any) error {
		return &Error{Field: path, Msg: fmt.Sprintf(format, args...)}
	}
	switch x := t.(type) {
	case string:
		return c.primitiveFromJSON(x, v, path)
	case []any: // union
		if v == nil {
			if slices.Contains(x, any("null")) {
				return nil, nil
			}
			return nil, bad("got null, want %s", typeWords(x))
		}
		var firstErr error
		for _, b := range x {
			if b == "null" {
				continue
			}
			got, err := c.fromJSON(b, v, path, ns)
			if err == nil {
				return map[string]any{c.branchName(b, ns): got}, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil, firstErr
	case map[string]any:
		switch x["type"] {
		case "record":
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, bad("got %s, want an object", describe(v))
			}
			out := make(map[string]any, len(obj))
			known := map[string]bool{}
			for _, f := range asList(x["fields"]) {
				fm := f.(map[string]any)
				name := fm["name"].(string)
				known[name] = true
				fp := join(path, name)
				fv, present := obj[name]
				if !present {
					def, hasDefault := fm["default"]
					if !hasDefault {
						if isNullable(fm["type"]) {
							out[name] = nil
							continue
						}
						return nil, &Error{Field: fp, Msg: fmt.Sprintf("missing; the schema requires it (%s)", typeWords(fm["type"]))}
					}
					fv = jsonNumbers(def)
					if u, ok := fm["type"].([]any); ok && def == nil && slices.Contains(u, any("null")) {
						out[name] = nil
						continue
					}
				}
				nv, err := c.fromJSON(fm["type"], fv, fp, ns)
				if err != nil {
					return nil, err
				}
				out[name] = nv
			}
			if c.strict {
				var extra []string
				for k := range obj {
					if !known[k] {
						extra = append(extra, k)
					}
				}
				if len(extra) > 0 {
					slices.Sort(extra)
					return nil, bad("fields %s are not in the schema (source.strict refuses them)", strings.Join(extra, ", "))
				}
			}
			return out, nil
		case "enum":
			s, ok := v.(string)
			syms := asList(x["symbols"])
			if !ok || !slices.Contains(syms, any(s)) {
				return nil, bad("got %s, want one of %v", describe(v), syms)
			}
			return s, nil
		case "array":
			l, ok := v.([]any)
			if !ok {
				return nil, bad("got %s, want an array", describe(v))
			}
			out := make([]any, len(l))
			for i, e := range l {
				nv, err := c.fromJSON(x["items"], e, fmt.Sprintf("%s[%d]", path, i), ns)
				if err != nil {
					return nil, err
				}
				out[i] = nv
			}
			return out, nil
		case "map":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, bad("got %s, want an object", describe(v))
			}
			out := make(map[string]any, len(m))
			for k, e := range m {
				nv, err := c.fromJSON(x["values"], e, join(path, k), ns)
				if err != nil {
					return nil, err
				}
				out[k] = nv
			}
			return out, nil
		case "fixed":
			s, ok := v.(string)
			size, _ := x["size"].(float64)
			b, latin := latin1(s)
			if !ok || !latin || len(b) != int(size) {
				return nil, bad("got %s, want a string of %d bytes (one character U+0000..U+00FF per byte)", describe(v), int(size))
			}
			return b, nil
		default: // a primitive written as {"type": …}, with or without a logicalType
			return c.fromJSON(x["type"], v, path, ns)
		}
	}
	return nil, bad("unsupported schema type %v", t)
}

func (c *Codec) primitiveFromJSON(t string, v any, path string) (any, error) {
	bad := func(want string) error {
		return &Error{Field: path, Msg: fmt.Sprintf("got %s, want %s", describe(v), want)}
	}
	switch t {
	case "null":
		if v != nil {
			return nil, bad("null")
		}
		return nil, nil
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			return nil, bad("true or false")
		}
		return b, nil
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, bad("a string")
		}
		return s, nil
	case "bytes":
		s, ok := v.(string)
		b, latin := latin1(s)
		if !ok || !latin {
			return nil, bad("a string of bytes, one character U+0000..U+00FF per byte (Avro's JSON encoding)")
		}
		return b, nil
	case "int", "long":
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("an integer (" + t + ")")
		}
		i, err := n.Int64()
		if err != nil {
			return nil, bad("an integer (" + t + ")")
		}
		if t == "int" {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, &Error{Field: path, Msg: fmt.Sprintf("%d is outside an int's range (32 bits); make the field a long", i)}
			}
			return int32(i), nil
		}
		return i, nil
	case "float", "double":
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("a number (" + t + ")")
		}
		f, err := n.Float64()
		if err != nil {
			return nil, bad("a number (" + t + ")")
		}
		if t == "float" {
			return float32(f), nil
		}
		return f, nil
	}
	return nil, &Error{Field: path, Msg: "unsupported type " + t}
}

// toJSON converts a native value of Avro type t to plain JSON values.
func (c *Codec) toJSON(t, v any, ns string) any {
	t, ns = c.resolve(t, ns)
	switch x := t.(type) {
	case []any:
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return v
		}
		for branch, inner := range m {
			for _, b := range x {
				if c.branchName(b, ns) == branch {
					return c.toJSON(b, inner, ns)
				}
			}
			return inner
		}
	case map[string]any:
		switch x["type"] {
		case "record":
			m, _ := v.(map[string]any)
			out := make(map[string]any, len(m))
			for _, f := range asList(x["fields"]) {
				fm := f.(map[string]any)
				name := fm["name"].(string)
				if fv, ok := m[name]; ok {
					out[name] = c.toJSON(fm["type"], fv, ns)
				}
			}
			return out
		case "array":
			l, _ := v.([]any)
			out := make([]any, len(l))
			for i, e := range l {
				out[i] = c.toJSON(x["items"], e, ns)
			}
			return out
		case "map":
			m, _ := v.(map[string]any)
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = c.toJSON(x["values"], e, ns)
			}
			return out
		case "enum":
			return v
		case "fixed":
			if b, ok := v.([]byte); ok {
				return fromLatin1(b)
			}
			return v
		default:
			return c.toJSON(x["type"], v, ns)
		}
	}
	if b, ok := v.([]byte); ok {
		return fromLatin1(b)
	}
	return v
}

// latin1 reads bytes as Avro's JSON encoding writes them: each character
// U+0000..U+00FF is one byte. ok is false for a character past U+00FF.
func latin1(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

// fromLatin1 writes bytes as Avro's JSON encoding does: one character per byte.
func fromLatin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// branchName is the key goavro gives a union branch of type b.
func (c *Codec) branchName(b any, ns string) string {
	switch x := b.(type) {
	case string:
		if primitive(x) {
			return x
		}
		if _, ok := c.named[x]; ok {
			return x
		}
		if ns != "" {
			return ns + "." + x
		}
		return x
	case map[string]any:
		switch x["type"] {
		case "record", "enum", "fixed":
			return fullName(x, ns)
		case "array", "map":
			return x["type"].(string)
		default:
			if s, ok := x["type"].(string); ok {
				// goavro names the branch of a logical type it knows
				// "type.logicalType"; of any other, the type's.
				if lt, _ := x["logicalType"].(string); logicalBranches[s+"."+lt] {
					return s + "." + lt
				}
				return s
			}
		}
	}
	return fmt.Sprint(b)
}

// logicalBranches are the logical types goavro gives a branch name of their
// own in a union.
var logicalBranches = map[string]bool{
	"long.timestamp-millis": true, "long.timestamp-micros": true, "int.time-millis": true,
	"long.time-micros": true, "int.date": true, "bytes.decimal": true, "string.validated-string": true,
}

func fullName(m map[string]any, ns string) string {
	name, _ := m["name"].(string)
	if strings.Contains(name, ".") {
		return name
	}
	if n, ok := m["namespace"].(string); ok && n != "" {
		return n + "." + name
	}
	if ns != "" {
		return ns + "." + name
	}
	return name
}

func primitive(s string) bool {
	switch s {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
		return true
	}
	return false
}

func isNullable(t any) bool {
	u, ok := t.([]any)
	return ok && slices.Contains(u, any("null"))
}

// typeWords names an Avro type for a message.
func typeWords(t any) string {
	switch x := t.(type) {
	case string:
		return x
	case []any:
		var parts []string
		for _, b := range x {
			parts = append(parts, typeWords(b))
		}
		return strings.Join(parts, " or ")
	case map[string]any:
		if n, ok := x["name"].(string); ok {
			return n
		}
		return fmt.Sprint(x["type"])
	}
	return fmt.Sprint(t)
}

// describe names a JSON value for a message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("%v", x)
	case json.Number:
		return "the number " + x.String()
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the string %q", x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonNumbers turns float64s from a parsed schema default into
// json.Numbers, as the decoder gives event values.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		return json.Number(fmt.Sprint(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonNumbers(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonNumbers(e)
		}
		return out
	}
	return v
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func asList(v any) []any { l, _ := v.([]any); return l }

// IsEventError reports whether err is an *Error (the event's fault).
func IsEventError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
