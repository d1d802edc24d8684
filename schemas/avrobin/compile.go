package avrobin

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnsupported means the schema uses a feature whose Go values goavro
// converts (a logical type); encode and decode it with goavro instead.
var ErrUnsupported = errors.New("schema needs goavro")

type kind uint8

const (
	kNull kind = iota
	kBool
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kFixed
	kUnion
)

var primitives = map[string]kind{
	"null": kNull, "boolean": kBool, "int": kInt, "long": kLong, "float": kFloat,
	"double": kDouble, "bytes": kBytes, "string": kString,
}

// node is one compiled schema. Named types are shared, so a recursive
// schema compiles to a graph with cycles.
type node struct {
	kind     kind
	name     string   // full name of a record, enum or fixed
	fields   []field  // record
	items    *node    // array items, map values
	symbols  []string // enum
	size     int      // fixed
	branches []*node  // union
	labels   []string // union: the key of a non-null branch's one-key map
	null     int      // union: index of the null branch, or -1
	minSize  int      // fewest bytes one value takes (bounds preallocation)
}

type field struct {
	name string
	node *node
}

// Codec decodes and encodes values of one schema. It is safe for
// concurrent use.
type Codec struct {
	root *node
}

// Compile compiles a schema given as JSON.
func Compile(schemaJSON string) (*Codec, error) { return CompileIn("", schemaJSON) }

// CompileIn compiles a schema that sits inside another one whose enclosing
// namespace is namespace: names without a namespace of their own take it,
// as they would in place.
func CompileIn(namespace, schemaJSON string) (*Codec, error) {
	return compile(namespace, schemaJSON, false)
}

// CompileLayout compiles only a schema's binary layout: logical types are
// read as the types they are written as (a timestamp-millis as a long).
// Its Check tells, without building anything, that bytes are a
// well-formed value of the schema before goavro, which would reserve
// whatever block count a corrupt message declares, decodes them.
func CompileLayout(schemaJSON string) (*Codec, error) {
	return compile("", schemaJSON, true)
}

func compile(namespace, schemaJSON string, layout bool) (*Codec, error) {
	var s any
	if err := json.Unmarshal([]byte(schemaJSON), &s); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	c := &compiler{named: map[string]*node{}, layout: layout}
	root, err := c.build(s, namespace)
	if err != nil {
		return nil, err
	}
	c.sizes()
	return &Codec{root: root}, nil
}

type compiler struct {
	named  map[string]*node
	all    []*node
	layout bool // logical types compile as their underlying types
}

func (c *compiler) node(k kind) *node {
	n := &node{kind: k, null: -1}
	c.all = append(c.all, n)
	return n
}

// fullName resolves name in the enclosing namespace ns, as the Avro
// specification's name rules say, and returns it with its own namespace.
func fullName(name, namespace, ns string) (full, space string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name, name[:i]
	}
	if namespace != "" {
		ns = namespace
	}
	if ns == "" {
		return name, ""
	}
	return ns + "." + name, ns
}

func (c *compiler) build(s any, ns string) (*node, error) {
	switch s := s.(type) {
	case string:
		if k, ok := primitives[s]; ok {
			return c.node(k), nil
		}
		full, _ := fullName(s, "", ns)
		if n, ok := c.named[full]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", s)
	case []any:
		u := c.node(kUnion)
		for i, b := range s {
			n, err := c.build(b, ns)
			if err != nil {
				return nil, fmt.Errorf("union branch %d: %w", i+1, err)
			}
			if n.kind == kUnion {
				return nil, fmt.Errorf("union branch %d is itself a union", i+1)
			}
			label := n.label()
			if slices.Contains(u.labels, label) {
				return nil, fmt.Errorf("union has two branches of type %s", label)
			}
			if n.kind == kNull {
				u.null = i
			}
			u.branches = append(u.branches, n)
			u.labels = append(u.labels, label)
		}
		if len(u.branches) == 0 {
			return nil, errors.New("union has no branches")
		}
		return u, nil
	case map[string]any:
		return c.complex(s, ns)
	}
	return nil, fmt.Errorf("a schema is a type name, an object or a union array, not %T", s)
}

func (c *compiler) complex(s map[string]any, ns string) (*node, error) {
	if _, ok := s["logicalType"]; ok && !c.layout {
		return nil, ErrUnsupported
	}
	switch t := s["type"].(type) {
	case map[string]any, []any:
		return c.build(t, ns)
	case string:
		switch t {
		case "record", "enum", "fixed":
			return c.namedType(t, s, ns)
		case "array", "map":
			k, attr := kArray, "items"
			if t == "map" {
				k, attr = kMap, "values"
			}
			n := c.node(k)
			items, err := c.build(s[attr], ns)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", t, attr, err)
			}
			n.items = items
			return n, nil
		}
		return c.build(t, ns)
	}
	return nil, fmt.Errorf("schema object has no valid \"type\": %v", s["type"])
}

func (c *compiler) namedType(t string, s map[string]any, ns string) (*node, error) {
	name, _ := s["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("%s has no name", t)
	}
	namespace, _ := s["namespace"].(string)
	full, space := fullName(name, namespace, ns)
	if _, dup := c.named[full]; dup {
		return nil, fmt.Errorf("type %q is defined twice", full)
	}
	var n *node
	switch t {
	case "record":
		n = c.node(kRecord)
		n.name = full
		c.named[full] = n // before the fields: they may refer to it
		fields, _ := s["fields"].([]any)
		if fields == nil {
			return nil, fmt.Errorf("record %q has no fields array", full)
		}
		for _, f := range fields {
			fm, _ := f.(map[string]any)
			fname, _ := fm["name"].(string)
			if fname == "" {
				return nil, fmt.Errorf("record %q: a field has no name", full)
			}
			fn, err := c.build(fm["type"], space)
			if err != nil {
				if errors.Is(err, ErrUnsupported) {
					return nil, err
				}
				return nil, fmt.Errorf("record %q field %q: %w", full, fname, err)
			}
			n.fields = append(n.fields, field{name: fname, node: fn})
		}
	case "enum":
		n = c.node(kEnum)
		n.name = full
		syms, _ := s["symbols"].([]any)
		for _, sym := range syms {
			str, ok := sym.(string)
			if !ok {
				return nil, fmt.Errorf("enum %q: symbol %v is not a string", full, sym)
			}
			n.symbols = append(n.symbols, str)
		}
		if len(n.symbols) == 0 {
			return nil, fmt.Errorf("enum %q has no symbols", full)
		}
		c.named[full] = n
	case "fixed":
		n = c.node(kFixed)
		n.name = full
		size, ok := s["size"].(float64)
		if !ok || size < 0 || size != float64(int(size)) {
			return nil, fmt.Errorf("fixed %q needs a non-negative integer size", full)
		}
		n.size = int(size)
		c.named[full] = n
	}
	return n, nil
}

// label is the key goavro gives a union branch of this type.
func (n *node) label() string {
	switch n.kind {
	case kRecord, kEnum, kFixed:
		return n.name
	case kArray:
		return "array"
	case kMap:
		return "map"
	}
	for name, k := range primitives {
		if k == n.kind {
			return name
		}
	}
	return "?"
}

// sizes computes every node's minimum encoded size, iterating to a fixed
// point because named types may be recursive.
func (c *compiler) sizes() {
	for _, n := range c.all {
		n.minSize = 1 << 30
	}
	for changed := true; changed; {
		changed = false
		for _, n := range c.all {
			m := n.computeMin()
			if m < n.minSize {
				n.minSize, changed = m, true
			}
		}
	}
}

func (n *node) computeMin() int {
	switch n.kind {
	case kNull:
		return 0
	case kFloat:
		return 4
	case kDouble:
		return 8
	case kFixed:
		return n.size
	case kRecord:
		sum := 0
		for _, f := range n.fields {
			sum = min(sum+f.node.minSize, 1<<30)
		}
		return sum
	case kUnion:
		m := 1 << 30
		for _, b := range n.branches {
			m = min(m, b.minSize)
		}
		return min(1+m, 1<<30)
	}
	return 1 // a varint, a length or a block count
}
