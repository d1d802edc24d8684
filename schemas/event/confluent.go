package event

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flexiflow/flexiflow/schemas"

	"github.com/flexiflow/flexiflow/schemas/registry"
)

// Registry is what a confluent-avro codec needs of a schema registry
// (*registry.Client has it). SchemaByID's errors wrap registry.ErrUnknown
// for an id the registry does not have; any other error means the
// registry did not answer.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (string, error)
	Register(ctx context.Context, subject, schema string) (int, error)
}

// requestTimeout bounds one registry lookup made while decoding or
// encoding (the registry client has its own, usually shorter, bound).
const requestTimeout = 30 * time.Second

// unknownFor is how long an id the registry did not have is remembered,
// so a run of events with a bad id costs one request, not one each.
const unknownFor = 30 * time.Second

type confluent struct {
	reg     Registry
	subject string

	mu      sync.Mutex
	writers map[int]*writer
	id      int // the registered id Encode frames with (0: not yet)
}

// writer is one writer schema, compiled, and how it resolves to the
// reader's; err is a writer the events of which cannot be read (unknown
// until expires, incompatible for good).
type writer struct {
	codec   *schemas.Binary
	schema  *schemaSet
	err     *Error
	expires time.Time
}

func (c *Codec) decodeConfluent(value []byte) (map[string]any, error) {
	if len(value) < 5 || value[0] != 0 {
		return nil, &Error{Msg: "not Confluent framing (a zero magic byte and a 4-byte schema id before the Avro body); is the topic's format avro (unframed) or json?"}
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	w, err := c.writer(id)
	if err != nil {
		return nil, err
	}
	native, rest, err := w.codec.Decode(value[5:])
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("the body is not the Avro encoding of writer schema id %d: %v", id, err)}
	}
	if len(rest) > 0 {
		return nil, &Error{Msg: fmt.Sprintf("%d bytes left over after one record of writer schema id %d", len(rest), id)}
	}
	out, err := convert(w.schema, c, w.schema.root, c.root, native, "", "", "", true)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Msg = fmt.Sprintf("writer schema id %d: %s", id, e.Msg)
		}
		return nil, err
	}
	rec, ok := out.(map[string]any)
	if !ok {
		return nil, &Error{Msg: fmt.Sprintf("writer schema id %d is not a record", id)}
	}
	return rec, nil
}

// writer returns writer schema id, fetched from the registry once and
// checked against the reader schema.
func (c *Codec) writer(id int) (*writer, error) {
	cf := c.confluent
	cf.mu.Lock()
	w, ok := cf.writers[id]
	cf.mu.Unlock()
	if ok && (w.expires.IsZero() || time.Now().Before(w.expires)) {
		if w.err != nil {
			return nil, w.err
		}
		return w, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	text, err := cf.reg.SchemaByID(ctx, id)
	switch {
	case errors.Is(err, registry.ErrUnknown):
		w = &writer{err: &Error{Msg: fmt.Sprintf("writer schema id %d: %v", id, err)}, expires: time.Now().Add(unknownFor)}
	case err != nil:
		return nil, fmt.Errorf("fetching writer schema id %d: %w", id, err)
	default:
		w = c.compileWriter(id, text)
	}
	cf.mu.Lock()
	if !w.expires.IsZero() { // remembering an unknown id: forget those that expired
		now := time.Now()
		for k, old := range cf.writers {
			if !old.expires.IsZero() && now.After(old.expires) {
				delete(cf.writers, k)
			}
		}
	}
	cf.writers[id] = w
	cf.mu.Unlock()
	if w.err != nil {
		return nil, w.err
	}
	return w, nil
}

func (c *Codec) compileWriter(id int, text string) *writer {
	bad := func(format string, args ...any) *writer {
		return &writer{err: &Error{Msg: fmt.Sprintf("writer schema id %d ", id) + fmt.Sprintf(format, args...)}}
	}
	codec, err := schemas.NewBinary(text)
	if err != nil {
		return bad("does not parse as Avro: %v", err)
	}
	var root any
	if err := json.Unmarshal([]byte(text), &root); err != nil {
		return bad("is not JSON: %v", err)
	}
	ws := newSchemaSet(root)
	if err := compatible(ws, c, root, c.root, "", "", "", true, map[string]bool{}); err != nil {
		return bad("is incompatible with the reader schema %s: %v", c.name, err)
	}
	return &writer{codec: codec, schema: ws}
}

// Prepare registers an encoding confluent-avro codec's schema under its
// subject now, so a registry that refuses it is reported at start rather
// than at the first record. Other codecs have nothing to prepare.
func (c *Codec) Prepare(ctx context.Context) error {
	if c.format != ConfluentAvro {
		return nil
	}
	_, err := c.registered(ctx)
	return err
}

func (c *Codec) registered(ctx context.Context) (int, error) {
	cf := c.confluent
	cf.mu.Lock()
	id := cf.id
	cf.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	if cf.subject == "" {
		return 0, errors.New("confluent-avro: no subject to register the schema under")
	}
	id, err := cf.reg.Register(ctx, cf.subject, c.schema)
	if err != nil {
		return 0, err
	}
	cf.mu.Lock()
	cf.id = id
	cf.mu.Unlock()
	return id, nil
}

func (c *Codec) encodeConfluent(rec map[string]any) ([]byte, error) {
	c.confluent.mu.Lock()
	id := c.confluent.id
	c.confluent.mu.Unlock()
	if id == 0 { // not registered yet (Prepare was not called, or failed)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var err error
		id, err = c.registered(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	b := make([]byte, 5, 64)
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return c.avro.Append(b, rec)
}
