package workflow

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDocumentedDefaults: every `default` tag the reference prints is the
// value the loader really fills in.
func TestDocumentedDefaults(t *testing.T) {
	w, err := Parse("min.yaml", []byte("workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := w.Steps[0]
	checked := 0
	for _, v := range []any{w, &w.Topics, s, &s.Policy, &s.Assertions.Batch, s.Models[0], s.Models[0].Breaker} {
		rv := reflect.ValueOf(v).Elem()
		for i := 0; i < rv.NumField(); i++ {
			f := rv.Type().Field(i)
			def, ok := f.Tag.Lookup("default")
			if !ok || strings.HasPrefix(def, "<") {
				continue
			}
			got := rv.Field(i)
			for got.Kind() == reflect.Pointer {
				got = got.Elem()
			}
			want := reflect.New(got.Type())
			if err := yaml.Unmarshal([]byte(def), want.Interface()); err != nil {
				t.Fatalf("%s.%s: default %q does not decode: %v", rv.Type().Name(), f.Name, def, err)
			}
			if !reflect.DeepEqual(got.Interface(), want.Elem().Interface()) {
				t.Errorf("%s.%s: the docs say the default is %s, the loader fills %v", rv.Type().Name(), f.Name, def, got.Interface())
			}
			checked++
		}
	}
	if checked < 8 {
		t.Errorf("checked %d defaults; the tags are not being read", checked)
	}
}
