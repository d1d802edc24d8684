package models

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/stages/suggest"
)

// decodeInto reads node into v (a struct), then walks both to refuse
// unknown keys, fill `default` tags of keys left out, and refuse missing
// `required` keys. Every problem is a *FieldError with its line.
func decodeInto(node *yaml.Node, v reflect.Value) error {
	if node.Kind != yaml.MappingNode {
		return &FieldError{Line: node.Line, Msg: fmt.Sprintf("the model's settings must be a mapping of keys, got %s", nodeKind(node))}
	}
	if err := node.Decode(v.Addr().Interface()); err != nil {
		return yamlProblems(err)
	}
	var errs []error
	walk(node, v, nil, &errs)
	return errors.Join(errs...)
}

func walk(node *yaml.Node, v reflect.Value, path []any, errs *[]error) {
	switch v.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		// yaml.v3 truncates 2.5 into an int field; a config must not.
		if v.Type() != reflect.TypeFor[time.Duration]() && node.Kind == yaml.ScalarNode && node.ShortTag() == "!!float" {
			if f, err := strconv.ParseFloat(node.Value, 64); err != nil || f != math.Trunc(f) {
				*errs = append(*errs, &FieldError{Path: path, Line: node.Line, Msg: fmt.Sprintf("got `%s`, want an integer", node.Value)})
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walk(node, v.Elem(), path, errs)
		}
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i := 0; i < v.Len() && i < len(node.Content); i++ {
			walk(node.Content[i], v.Index(i), append(clone(path), i), errs)
		}
	case reflect.Struct:
		if node.Kind != yaml.MappingNode || v.Type() == reflect.TypeFor[time.Duration]() {
			return
		}
		t := v.Type()
		keys := keysOf(t)
		present := map[string]*yaml.Node{}
		meant := map[string]bool{} // keys a misspelt one probably meant
		for i := 0; i+1 < len(node.Content); i += 2 {
			k := node.Content[i]
			present[k.Value] = node.Content[i+1]
			if !slices.Contains(keys, k.Value) {
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := suggest.Closest(k.Value, keys); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
					meant[s] = true
				}
				if len(keys) > 0 {
					msg += "; keys here: " + strings.Join(keys, ", ")
				} else {
					msg += "; this takes no keys"
				}
				*errs = append(*errs, &FieldError{Path: append(clone(path), k.Value), Line: k.Line, Msg: msg})
			}
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			fp := append(clone(path), name)
			child, ok := present[name]
			if ok {
				walk(child, v.Field(i), fp, errs)
				continue
			}
			if f.Tag.Get("required") == "true" {
				if !meant[name] { // else the misspelling's message says it
					*errs = append(*errs, &FieldError{Path: path, Line: node.Line, Msg: fmt.Sprintf("%s is missing: %s", name, f.Tag.Get("doc"))})
				}
				continue
			}
			if d, ok := f.Tag.Lookup("default"); ok {
				if err := yaml.Unmarshal([]byte(d), v.Field(i).Addr().Interface()); err != nil {
					panic(fmt.Sprintf("models: default %q of %s.%s does not decode: %v", d, t, f.Name, err))
				}
			}
		}
	}
}

// fieldsOf lists the documented keys of struct type t, nested keys with
// dotted names under prefix.
func fieldsOf(t reflect.Type, prefix string) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		full := prefix + name
		out = append(out, Field{
			Name: full, Type: typeName(f.Type), Default: f.Tag.Get("default"),
			Required: f.Tag.Get("required") == "true", Doc: f.Tag.Get("doc"),
		})
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
			out = append(out, fieldsOf(ft, full+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, fieldsOf(ft.Elem(), full+"[].")...)
		}
	}
	return out
}

// typeName names a config field's type as the reference shows it.
func typeName(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() || t.Name() == "Duration" {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map"
	case reflect.Struct:
		return "mapping"
	}
	return t.String()
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); n != "" {
			keys = append(keys, n)
		}
	}
	return keys
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func clone(p []any) []any { return append([]any(nil), p...) }

// Describe lists the documented keys of a config struct type, nested
// keys with dotted names (inputs[].tensor), as the reference shows them.
// It reads the same tags Define decodes and checks with.
func Describe(t reflect.Type) []Field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return fieldsOf(t, "")
}
