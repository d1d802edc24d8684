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
		{d.Topics.Feedback, "shop.detect.feedback"},
		{c.Topics.Feedback, ""}, // the last step: nothing reports back to it
	}
	for i, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("check %d: got %v, want %v", i, ch.got, ch.want)
		}
	}
	if got := len(w.AllTopics()); got != 9 { // two steps' in, retry, dlq; detect's feedback; out, traces
		t.Errorf("AllTopics: %d topics, want 9", got)
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
		{"unknown field", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    modles: []\n", "bad.yaml:5: unknown key \"modles\" (did you mean \"models\"?)"},
		{"misspelt top-level key", "workflow: w\ninput_schema: a.B\nstpes: []\n", "bad.yaml:3: unknown key \"stpes\" (did you mean \"steps\"?)"},
		{"two steps read one topic", "workflow: w\ninput_schema: a.B\nsteps:\n  - {name: a, output_schema: a.B, models: [{name: m}], topics: {in: shared}}\n  - name: b\n    output_schema: a.B\n    models: [{name: m}]\n    topics: {in: shared}\n", "bad.yaml:8: topic \"shared\" is both step \"a\"'s in topic and step \"b\"'s in topic"},
		{"dlq is a step's input", "workflow: w\ninput_schema: a.B\nsteps:\n  - {name: a, output_schema: a.B, models: [{name: m}], topics: {dlq: w.b.in}}\n  - {name: b, output_schema: a.B, models: [{name: m}]}\n", "topic \"w.b.in\" is both step \"b\"'s in topic and step \"a\"'s dlq topic"},
		{"no steps", "workflow: w\ninput_schema: a.B\n", "bad.yaml:1: the workflow has no steps"},
		{"bad name", "workflow: \"a b\"\ninput_schema: a.B\nsteps: [{name: s, output_schema: a.B, models: [{name: m}]}]\n", "bad.yaml:1: workflow name \"a b\" must be"},
		{"duplicate model", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - name: m\n      - name: m\n", "bad.yaml:8: model name \"m\" is used twice"},
		{"bad duration", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - name: m\n        timeout: soon\n", "line 8: \"soon\" is not a duration"},
		{"fraction", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    assertions:\n      batch:\n        min_pass_fraction: 1.5\n", "bad.yaml:9: min_pass_fraction must be between 0 and 1"},
		{"empty expr", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    assertions:\n      records:\n        - name: x\n", "bad.yaml:9: assertion \"x\" has no expr"},
		{"no models", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n", "bad.yaml:4: step \"s\" has no models"},
		{"no input schema", "workflow: w\nsteps: [{name: s, output_schema: a.B, models: [{name: m}]}]\n", "input_schema is missing"},
		{"context on the first step", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    policy:\n      context: upstream\n", "bad.yaml:8: step \"s\" is the first step: no model serves a step before it"},
		{"unknown context", "workflow: w\ninput_schema: a.B\nsteps:\n  - {name: a, output_schema: a.B, models: [{name: m}]}\n  - name: b\n    output_schema: a.B\n    models: [{name: m}]\n    policy: {context: batch}\n", "bad.yaml:8: step \"b\": policy context \"batch\" is not known; use upstream"},
		{"feedback on the last step", "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models: [{name: m}]\n    topics: {feedback: x}\n", "bad.yaml:7: step \"s\" is the last step: nothing downstream reports back to it"},
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

// TestBadPolicies checks that every policy parameter is validated when the
// file is loaded (before any connection), pointing at its line and giving
// the valid range.
func TestBadPolicies(t *testing.T) {
	cases := []struct{ policy, want string }{
		{"{name: sw-ucb, params: {window: 0}}", "bad.yaml:6: step \"s\": sw-ucb: window must be an integer in [1, 1e+06], got 0"},
		{"{name: sw-ucb, params: {window: -5}}", "window must be an integer in [1, 1e+06], got -5"},
		{"{name: sw-ucb, params: {window: 2.5}}", "window must be an integer in [1, 1e+06], got 2.5"},
		{"{name: epsilon-greedy, params: {epsilon: 2.0}}", "epsilon-greedy: epsilon must be [0, 1], got 2"},
		{"{name: epsilon-greedy, params: {epsilon: -1}}", "epsilon must be [0, 1], got -1"},
		{"{name: epsilon-greedy, params: {epsilon: .nan}}", "epsilon must be [0, 1], got NaN"},
		{"{name: static-best, params: {warmup: -1}}", "static-best: warmup must be an integer in [0, 1e+09], got -1"},
		{"{name: thompson, params: {discount: 1.5}}", "thompson: discount must be (0, 1], got 1.5"},
		{"{name: flexiflow, params: {downstream_discount: 0}}", "flexiflow: downstream_discount must be (0, 1], got 0"},
		{"{name: ucb1, params: {window: 3}}", "ucb1: unknown parameter \"window\"; it takes no parameters"},
		{"{name: thompson, params: {dicount: 0.9}}", "thompson: unknown parameter \"dicount\"; known parameters: discount, prior_pass"},
		{"{name: greedy}", "bad.yaml:6: step \"s\": unknown policy \"greedy\"; known policies: flexiflow, thompson"},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			yaml := "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    policy: " + c.policy + "\n    models: [{name: m}]\n"
			_, err := Parse("bad.yaml", []byte(yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	for _, name := range []string{"flexiflow", "thompson", "epsilon-greedy", "ucb1", "sw-ucb", "cascade-ucb", "random", "static-best"} {
		yaml := "workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    policy: {name: " + name + "}\n    models: [{name: m}]\n"
		if _, err := Parse("good.yaml", []byte(yaml)); err != nil {
			t.Errorf("policy %s with its defaults: %v", name, err)
		}
	}
}

func TestLoadResolvesSchemaPaths(t *testing.T) {
	if _, err := Load("/no/such/file.yaml"); err == nil || !strings.Contains(err.Error(), "reading workflow") {
		t.Errorf("missing file: got %v", err)
	}
}

// TestPolicyOverrides checks --policy and --policy-param: every step is
// changed, a step's own parameters stay unless overridden, and a value the
// policy does not take is refused with the step and what it takes.
func TestPolicyOverrides(t *testing.T) {
	const two = `workflow: w
input_schema: flexiflow.demo.DigitImage
steps:
  - name: a
    output_schema: flexiflow.demo.DigitImage
    models: [{name: m}]
    policy: {name: flexiflow, params: {discount: 0.9}}
  - name: b
    output_schema: flexiflow.demo.DigitImage
    models: [{name: m}]
    policy: {name: ucb1}
`
	w, err := Parse("w.yaml", []byte(two))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetPolicyParams(map[string]string{"overhead_ms": "0"}); err == nil || !strings.Contains(err.Error(), `step "b" (policy ucb1)`) {
		t.Fatalf("overhead_ms on ucb1: got %v, want an error naming step b and its policy", err)
	}
	if got := w.Steps[0].Policy.Params; len(got) != 1 || got["discount"] != 0.9 {
		t.Errorf("a refused --policy-param changed step a's parameters to %v", got)
	}
	if err := w.SetPolicy("thompson"); err != nil {
		t.Fatal(err)
	}
	if err := w.SetPolicyParams(map[string]string{"overhead_ms": " 0 ", "discount": "0.95"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range w.Steps {
		if s.Policy.Name != "thompson" || s.Policy.Params["overhead_ms"] != 0 || s.Policy.Params["discount"] != 0.95 {
			t.Errorf("step %s: policy %s %v, want thompson with overhead_ms 0 and discount 0.95", s.Name, s.Policy.Name, s.Policy.Params)
		}
	}
	if _, ok := w.Steps[0].Policy.Params["overhead_ms"]; !ok {
		t.Error("overhead_ms 0 was not stored")
	}

	w, _ = Parse("w.yaml", []byte(two))
	w.Steps[1].Policy.Name = "flexiflow"
	if err := w.SetPolicyParams(map[string]string{"overhead_ms": "2"}); err != nil {
		t.Fatal(err)
	}
	if got := w.Steps[0].Policy.Params; got["discount"] != 0.9 || got["overhead_ms"] != 2 {
		t.Errorf("step a keeps its own discount beside the override: got %v", got)
	}
	for _, bad := range []map[string]string{{"overhead_ms": "fast"}, {"overhead_ms": "-1"}, {"nope": "1"}} {
		if err := w.SetPolicyParams(bad); err == nil || !strings.Contains(err.Error(), "--policy-param") {
			t.Errorf("%v: got %v, want an error that names --policy-param", bad, err)
		}
	}
}
