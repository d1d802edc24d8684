package models

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// Kind is one kind of model a workflow file may name with `kind:`: its
// name, its config schema (the fields a model entry of this kind takes,
// with types, defaults and docs) and its constructor. The workflow
// loader decodes and validates a model entry against the schema, and the
// workflow reference in docs/ is generated from the same declaration, so
// the two cannot drift. Build a Kind with Define or WithOptions.
type Kind struct {
	// Name is what `kind:` says, e.g. kserve-v2 or digits.knn.
	Name string
	// Doc is a paragraph for the reference: what the model is and does.
	Doc string
	// Fields is the config schema, derived from the config type's tags.
	Fields []Field

	decode func(name string, node *yaml.Node) (any, error)
	build  func(cfg any, env Env) (Model, error)
}

// Field is one key of a kind's config, as the reference documents it.
type Field struct {
	Name     string // dotted path: inputs[].tensor
	Type     string // string, int, number, bool, list of string, …
	Default  string // "" when there is none
	Required bool
	Doc      string
}

// Env is what a kind's constructor gets besides its config.
type Env struct {
	// Name is the model's name in the workflow, for errors and logs.
	Name string
	// Log receives the model's own events; never nil.
	Log *zap.Logger
}

// Config is a decoded, defaulted and checked model config, ready for New.
type Config struct {
	kind *Kind
	name string
	v    any
}

// Value is the config as the kind declared it (a pointer to its struct,
// or map[string]any for a kind built with WithOptions).
func (c Config) Value() any { return c.v }

// New builds the model from its checked config.
func (c Config) New(log *zap.Logger) (Model, error) {
	if log == nil {
		log = zap.NewNop()
	}
	m, err := c.kind.build(c.v, Env{Name: c.name, Log: log})
	if err != nil {
		return nil, fmt.Errorf("building a %s model: %w", c.kind.Name, err)
	}
	return m, nil
}

// Decode reads node (a YAML mapping of the model entry's kind-specific
// keys; nil for none) into the kind's config: unknown keys, wrong types
// and failed checks come back as *FieldError values (joined) that say
// which key and line.
func (k *Kind) Decode(name string, node *yaml.Node) (Config, error) {
	if node == nil {
		node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	v, err := k.decode(name, node)
	if err != nil {
		return Config{}, err
	}
	return Config{kind: k, name: name, v: v}, nil
}

// Checker is implemented by config types that validate themselves after
// decoding; they may also fill defaults that depend on other fields.
// Problems are *FieldError values (joined with errors.Join) so the loader
// can point at the key's line.
type Checker interface {
	Check() error
}

// FieldError is a problem with one key of a model's config.
type FieldError struct {
	// Path is the key's path below the model entry: "url", or
	// "inputs", 0, "datatype".
	Path []any
	// Line is the key's line when the decoder knows it (0 otherwise).
	Line int
	Msg  string
}

func (e *FieldError) Error() string { return e.Msg }

// Problem returns a FieldError for the key at path.
func Problem(path []any, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Define declares a kind whose config is the struct C. C's fields are
// read from YAML by their `yaml` tags and documented by their `doc` tags;
// a `default` tag (YAML text) fills a key the entry leaves out, and
// `required:"true"` refuses an entry without it. If *C implements Checker
// its Check runs after decoding. build gets the checked config.
func Define[C any](name, doc string, build func(cfg *C, env Env) (Model, error)) Kind {
	t := reflect.TypeFor[C]()
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("models.Define(%q): config type %s is not a struct", name, t))
	}
	return Kind{
		Name:   name,
		Doc:    doc,
		Fields: fieldsOf(t, ""),
		decode: func(model string, node *yaml.Node) (any, error) {
			cfg := new(C)
			if err := decodeInto(node, reflect.ValueOf(cfg).Elem()); err != nil {
				return nil, err
			}
			if c, ok := any(cfg).(Checker); ok {
				if err := c.Check(); err != nil {
					return nil, err
				}
			}
			return cfg, nil
		},
		build: func(cfg any, env Env) (Model, error) { return build(cfg.(*C), env) },
	}
}

// WithOptions declares a kind whose config is a free-form map of
// options, checked only by its constructor: for models defined in a test
// or a program, whose options need no reference entry.
func WithOptions(name, doc string, build func(opts map[string]any) (Model, error)) Kind {
	return Kind{
		Name: name,
		Doc:  doc,
		decode: func(_ string, node *yaml.Node) (any, error) {
			opts := map[string]any{}
			if err := node.Decode(&opts); err != nil {
				return nil, yamlProblems(err)
			}
			return opts, nil
		},
		build: func(cfg any, _ Env) (Model, error) { return build(cfg.(map[string]any)) },
	}
}

// Registry holds the kinds a workflow may name. There is no global one:
// the program that runs workflows builds it and passes it on. The zero
// value is not usable; call NewRegistry.
type Registry struct {
	kinds map[string]*Kind
}

// NewRegistry returns a registry holding kinds.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{kinds: map[string]*Kind{}}
	for _, k := range kinds {
		r.Add(k)
	}
	return r
}

// Add registers k, replacing any kind of the same name.
func (r *Registry) Add(k Kind) { r.kinds[k.Name] = &k }

// Register adds a kind called name whose models take free-form options
// (see WithOptions).
func (r *Registry) Register(name string, build func(opts map[string]any) (Model, error)) {
	r.Add(WithOptions(name, "", build))
}

// Kind returns the kind called name, or an error that lists the kinds.
func (r *Registry) Kind(name string) (*Kind, error) {
	if k, ok := r.kinds[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("no model kind %q; known kinds: %s", name, strings.Join(r.Names(), ", "))
}

// Has reports whether a kind called name is registered.
func (r *Registry) Has(name string) bool { _, ok := r.kinds[name]; return ok }

// Names lists the registered kinds, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kinds lists the registered kinds, sorted by name.
func (r *Registry) Kinds() []*Kind {
	out := make([]*Kind, 0, len(r.kinds))
	for _, n := range r.Names() {
		out = append(out, r.kinds[n])
	}
	return out
}

// New builds a model of kind name from free-form options: a shortcut for
// programs and tests that do not read a workflow file.
func (r *Registry) New(name string, opts map[string]any) (Model, error) {
	k, err := r.Kind(name)
	if err != nil {
		return nil, err
	}
	var node yaml.Node
	if err := node.Encode(opts); err != nil {
		return nil, fmt.Errorf("options for %q: %w", name, err)
	}
	if opts == nil {
		node = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	cfg, err := k.Decode(name, &node)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", name, err)
	}
	return cfg.New(nil)
}

var cannotUnmarshal = regexp.MustCompile("^cannot unmarshal (!!\\w+(?: `.*`)?) into (\\S+)$")

// wantType says what a Go type is in a config's words.
func wantType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map"):
		return "a mapping"
	}
	return "a " + goType
}

// yamlProblems turns a YAML decoding error into FieldErrors with lines.
func yamlProblems(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var out []error
	for _, e := range te.Errors {
		fe := &FieldError{Msg: e}
		var line int
		if n, _ := fmt.Sscanf(e, "line %d:", &line); n == 1 {
			fe.Line = line
			_, fe.Msg, _ = strings.Cut(e, ": ")
		}
		if m := cannotUnmarshal.FindStringSubmatch(fe.Msg); m != nil {
			got := strings.NewReplacer("!!seq", "a list", "!!map", "a mapping", "!!str ", "", "!!int ", "", "!!float ", "", "!!bool ", "").Replace(m[1])
			fe.Msg = fmt.Sprintf("got %s, want %s", got, wantType(m[2]))
		}
		out = append(out, fe)
	}
	return errors.Join(out...)
}
