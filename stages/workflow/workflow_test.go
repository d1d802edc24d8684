package workflow

import (
	"strings"
	"testing"
	"time"
)

const good = `workflow: shop
input_schema: flexiflow.demo.DigitImage
steps:
  - name: detect
    output_schema: flexiflow.demo.DigitImage
    models:
      - name: small
      - name: large
        kind: builtin
        builtin: digits.knn
        timeout: 250ms
    assertions:
      records:
        - expr: output.confidence > 0.5
  - name: classify
    output_schema: flexiflow.demo.DigitPrediction
    topics: {in: custom.in}
    models: [{name: m}]
`

func TestDefaults(t *testing.T) {
	w, err := Parse("shop.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	d, c := w.Steps[0], w.Steps[1]
	checks := []struct{ got, want any }{
		{d.Topics.In, "shop.detect.in"},
		{d.Topics.Retry, "shop.detect.retry"},
		{d.Topics.DLQ, "shop.detect.dlq"},
		{d.Output, "custom.in"}, // step k's output is step k+1's input, overrides included
		{c.Output, "shop.out"},
		{w.Topics.Traces, "shop.traces"},
		{d.Group, "shop.detect"},
		{d.Models[0].Kind, KindBuiltin},
		{d.Models[0].Builtin, "small"},
		{d.Models[1].Builtin, "digits.knn"},
		{time.Duration(d.Models[0].Timeout), DefaultTimeout},
		{time.Duration(d.Models[1].Timeout), 250 * time.Millisecond},
		{*d.Assertions.Batch.MinPassFraction, 1.0},
		{d.Assertions.Records[0].Name, "assertion1"},
		{c.InputSchema, "flexiflow.demo.DigitImage"},
		{d.Policy.Name, "flexiflow"},
		{w.Partitions, DefaultPartitions},
	}
	for i, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("check %d: got %v, want %v", i, ch.got, ch.want)
		}
	}
	if got := len(w.AllTopics()); got != 8 {
		t.Errorf("AllTopics: %d topics, want 8", got)
	}
}

// TestBadFiles checks that each mistake is reported with the file, the line
// it is on, and what to do.
func TestBadFiles(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"not yaml", "workflow: [unclosed", "bad.yaml: not valid YAML"},
		{"empty", "", "the file is empty"},
		{"unknown field", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    modles: []\n", "bad.yaml: line 5: field modles not found"},
		{"no steps", "workflow: w\ninput_schema: a.B\n", "bad.yaml:1: the workflow has no steps"},
		{"bad name", "workflow: \"a b\"\ninput_schema: a.B\nsteps: [{name: s, output_schema: a.B, models: [{name: m}]}]\n", "bad.yaml:1: workflow name \"a b\" must be"},
		{"unknown kind", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - name: m\n        kind: tensorflow\n", "bad.yaml:8: unknown model kind \"tensorflow\"; known kinds: builtin"},
		{"duplicate model", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - name: m\n      - name: m\n", "bad.yaml:8: model name \"m\" is used twice"},
		{"bad duration", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - name: m\n        timeout: soon\n", "line 8: \"soon\" is not a duration"},
		{"fraction", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    assertions:\n      batch:\n        min_pass_fraction: 1.5\n", "bad.yaml:9: min_pass_fraction must be between 0 and 1"},
		{"empty expr", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    assertions:\n      records:\n        - name: x\n", "bad.yaml:9: assertion \"x\" has no expr"},
		{"no models", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n", "bad.yaml:4: step \"s\" has no models"},
		{"no input schema", "workflow: w\nsteps: [{name: s, output_schema: a.B, models: [{name: m}]}]\n", "input_schema is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

func TestLoadResolvesSchemaPaths(t *testing.T) {
	if _, err := Load("/no/such/file.yaml"); err == nil || !strings.Contains(err.Error(), "reading workflow") {
		t.Errorf("missing file: got %v", err)
	}
}
