package schemas

import (
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/linkedin/goavro/v2"

	"github.com/flexiflow/flexiflow/schemas/avrobin"
)

//go:embed *.avsc
var embedded embed.FS

// ErrNotSingleObject means the bytes do not start with the Avro
// single-object marker: they are not a FlexiFlow message at all.
var ErrNotSingleObject = errors.New("not Avro single-object encoded (missing C3 01 marker)")

// ErrUnknownSchema means the bytes are single-object encoded with a schema
// fingerprint this reader does not know.
var ErrUnknownSchema = errors.New("unknown schema fingerprint")

// Registry knows record schemas by their full Avro name ("ns.Name"). It
// starts empty: AddFile adds a workflow's own schemas, AddFS those a
// program embeds (a model kind's, a benchmark's).
type Registry struct {
	records map[string]string // full name -> schema JSON
}

// NewRegistry returns an empty registry. (The error is always nil; it is
// kept for callers written when the registry read embedded files.)
func NewRegistry() (*Registry, error) {
	return &Registry{records: map[string]string{}}, nil
}

// AddFS adds every record schema in fsys whose path matches pattern
// (fs.Glob syntax, e.g. "schemas/*.avsc").
func (r *Registry) AddFS(fsys fs.FS, pattern string) error {
	files, err := fs.Glob(fsys, pattern)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no schema files match %s", pattern)
	}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return err
		}
		if _, err := r.Add(string(b)); err != nil {
			return fmt.Errorf("schema %s: %w", f, err)
		}
	}
	return nil
}

// Add registers a record schema and returns its full name.
func (r *Registry) Add(schemaJSON string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(schemaJSON), &m); err != nil {
		return "", fmt.Errorf("schema is not valid JSON: %w", err)
	}
	if m["type"] != "record" {
		return "", fmt.Errorf("schema must be an Avro record (\"type\": \"record\"), got %v", m["type"])
	}
	if _, err := goavro.NewCodec(schemaJSON); err != nil {
		return "", fmt.Errorf("invalid Avro schema: %w", err)
	}
	name, _ := m["name"].(string)
	if name == "" {
		return "", errors.New("record schema has no name")
	}
	if ns, _ := m["namespace"].(string); ns != "" && !strings.Contains(name, ".") {
		name = ns + "." + name
	}
	r.records[name] = schemaJSON
	return name, nil
}

// AddFile reads an .avsc file and registers it.
func (r *Registry) AddFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	name, err := r.Add(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return name, nil
}

// Has reports whether a record schema of that full name is known.
func (r *Registry) Has(name string) bool { _, ok := r.records[name]; return ok }

// Names lists the known record schemas, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.records))
	for n := range r.records {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// BatchCodec builds the codec for batches of the named record type.
func (r *Registry) BatchCodec(recordName string) (*BatchCodec, error) {
	rec, ok := r.records[recordName]
	if !ok {
		return nil, fmt.Errorf("unknown record schema %q; known: %s", recordName, strings.Join(r.Names(), ", "))
	}
	env, err := embedded.ReadFile("envelope.avsc")
	if err != nil {
		return nil, err
	}
	var envelope map[string]any
	if err := json.Unmarshal(env, &envelope); err != nil {
		return nil, err
	}
	var record any
	if err := json.Unmarshal([]byte(rec), &record); err != nil {
		return nil, err
	}
	// Name the envelope after its record type so that two record types never
	// share a batch schema name, and put the record schema in place.
	envelope["name"] = "Batch_" + strings.ReplaceAll(recordName, ".", "_")
	for _, f := range envelope["fields"].([]any) {
		field := f.(map[string]any)
		if field["name"] == "records" {
			field["type"] = map[string]any{"type": "array", "items": record}
		}
	}
	full, err := json.Marshal(envelope)
	if err != nil {
		return nil, err
	}
	c, err := newCodec(string(full))
	if err != nil {
		return nil, fmt.Errorf("batch schema for %s: %w", recordName, err)
	}
	return &BatchCodec{Codec: c, Record: recordName, RecordSchema: r.records[recordName], Numeric: numericFields(record), Fields: fieldKinds(record)}, nil
}

// Codec encodes and decodes one schema in single-object encoding. The
// schema's compiled codec (avrobin) does the work; goavro encodes the values
// it hands back (Go types goavro converts, fields left to their defaults)
// and every schema avrobin does not compile (logical types).
type Codec struct {
	avro        *goavro.Codec
	fast        *avrobin.Codec // nil: goavro does everything
	layout      *avrobin.Codec // when fast is nil: checks bytes before goavro decodes them
	fingerprint uint64
}

func newCodec(schemaJSON string) (*Codec, error) {
	c, err := goavro.NewCodec(schemaJSON)
	if err != nil {
		return nil, err
	}
	codec := &Codec{avro: c, fingerprint: c.Rabin}
	codec.fast, err = avrobin.Compile(schemaJSON)
	if errors.Is(err, avrobin.ErrUnsupported) {
		codec.layout, err = avrobin.CompileLayout(schemaJSON)
	}
	if err != nil {
		return nil, fmt.Errorf("compiling a schema goavro accepts: %w", err)
	}
	return codec, nil
}

// Fingerprint is the schema's CRC-64-AVRO fingerprint, as written in every
// message's header.
func (c *Codec) Fingerprint() uint64 { return c.fingerprint }

// Schema returns the schema's canonical form.
func (c *Codec) Schema() string { return c.avro.CanonicalSchema() }

// Encode appends the single-object encoding of native to buf.
func (c *Codec) Encode(buf []byte, native any) ([]byte, error) {
	if c.fast != nil {
		head := c.appendHeader(buf)
		if out, ok := c.fast.Append(head, native); ok {
			return out, nil
		}
	}
	return c.avro.SingleFromNative(buf, native)
}

// appendHeader appends the single-object marker and the fingerprint.
func (c *Codec) appendHeader(buf []byte) []byte {
	return binary.LittleEndian.AppendUint64(append(buf, 0xC3, 0x01), c.fingerprint)
}

// decodeBody decodes an Avro binary body (the bytes after the header).
func (c *Codec) decodeBody(body []byte) (any, error) {
	v, rest, err := c.decodePrefix(body)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the Avro body", len(rest))
	}
	return v, nil
}

// decodePrefix decodes one Avro binary value from the front of b and
// returns the bytes after it. Bytes from outside (a corrupt or hostile
// array or map block count) never make it reserve memory they do not hold.
func (c *Codec) decodePrefix(b []byte) (any, []byte, error) {
	if c.fast != nil {
		return c.fast.Decode(b)
	}
	if _, err := c.layout.Check(b); err != nil {
		return nil, nil, err
	}
	// Well-formed: goavro may decode it (and convert its logical types).
	return c.avro.NativeFromBinary(b)
}

// Binary reads and writes the plain Avro binary encoding of one schema (no
// header, no framing), for values that come from outside FlexiFlow: the
// events of a user's topic. It is the batch codecs' machinery: avrobin where
// it compiles the schema, goavro checked by avrobin's layout otherwise.
type Binary struct{ c *Codec }

// NewBinary compiles schemaJSON.
func NewBinary(schemaJSON string) (*Binary, error) {
	c, err := newCodec(schemaJSON)
	if err != nil {
		return nil, err
	}
	return &Binary{c}, nil
}

// Decode reads one value from the front of b and returns the bytes after it.
func (b *Binary) Decode(data []byte) (any, []byte, error) { return b.c.decodePrefix(data) }

// Append appends native's encoding to buf.
func (b *Binary) Append(buf []byte, native any) ([]byte, error) {
	if b.c.fast != nil {
		if out, ok := b.c.fast.Append(buf, native); ok {
			return out, nil
		}
	}
	return b.c.avro.BinaryFromNative(buf, native)
}

// Fingerprint reads the schema fingerprint from a single-object encoded
// message, or returns ErrNotSingleObject.
func Fingerprint(msg []byte) (uint64, error) {
	fp, _, err := goavro.FingerprintFromSOE(msg)
	if err != nil {
		return 0, ErrNotSingleObject
	}
	return fp, nil
}
