package workflow

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/stages/suggest"
)

// unknownField matches yaml.v3's message for a key no field takes.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type workflow\.(\w+)$`)

// keyType returns the named Go type a workflow file decodes a mapping into,
// so an unknown key's message can list the keys that mapping takes.
func keyType(name string) reflect.Type {
	for _, v := range []any{Workflow{}, Source{}, SourceBatch{}, Sink{}, Topics{}, Step{}, StepTopics{}, Model{}, Breaker{}, Policy{}, Assertions{}, Assertion{}, BatchRule{}} {
		if t := reflect.TypeOf(v); t.Name() == name {
			return t
		}
	}
	return nil
}

// decodeError rewrites the YAML decoder's errors so each says where it is
// as file:line and, for a misspelt key, which key was probably meant.
func decodeError(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var out []error
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			if line, rest, ok := strings.Cut(strings.TrimPrefix(e, "line "), ": "); ok && line != e {
				out = append(out, fmt.Errorf("%s:%s: %s", file, line, rest))
			} else {
				out = append(out, fmt.Errorf("%s: %s", file, e))
			}
			continue
		}
		keys := yamlKeys(keyType(m[3]))
		msg := fmt.Sprintf("%s:%s: unknown key %q", file, m[1], m[2])
		if s := suggest.Closest(m[2], keys); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if len(keys) > 0 {
			msg += "; keys here: " + strings.Join(keys, ", ")
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}

// yamlKeys lists the keys a struct type takes in YAML.
func yamlKeys(t reflect.Type) []string {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}
