package workflow

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownField matches yaml.v3's message for a key no field takes.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type workflow\.(\w+)$`)

// keyType returns the named Go type a workflow file decodes a mapping into,
// so an unknown key's message can list the keys that mapping takes.
func keyType(name string) reflect.Type {
	for _, v := range []any{Workflow{}, Step{}, StepTopics{}, Model{}, TensorInput{}, TensorOutput{}, Breaker{}, ServerAuth{}, Policy{}, Assertions{}, Assertion{}, BatchRule{}} {
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
		if s := Closest(m[2], keys); s != "" {
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

// Closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a typo of it, for "did you mean" hints.
func Closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein (optimal string alignment)
// distance, so a swap of two letters ("stpes") counts as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
