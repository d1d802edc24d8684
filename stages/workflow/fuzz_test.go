package workflow

import (
	"testing"
)

// FuzzParse feeds the workflow loader arbitrary YAML: it must load it or
// refuse it with an error, never panic, and a file it loads must have the
// defaults every later stage relies on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	for _, s := range []string{
		"",
		"workflow: [unclosed",
		"workflow: w\ninput_schema: a.B\nstpes: []\n",
		"workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    policy: {name: sw-ucb, params: {window: 0}}\n    models: [{name: m}]\n",
		"workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    policy: {name: epsilon-greedy, params: {epsilon: .nan}}\n    models: [{name: m}]\n",
		"workflow: w\ninput_schema: a.B\npartitions: 99999999999999999999\nsteps: []\n",
		"a: &a [*a, *a]\n",
		"workflow: w\ninput_schema: a.B\nsteps:\n  - name: s\n    output_schema: a.B\n    models:\n      - {name: m, kind: kserve-v2, url: 'http://x:1', model: m, inputs: [{tensor: t, fields: [a]}], outputs: [{tensor: o, field: p}], breaker: {failures: -7}}\n",
		"workflow: w\ninput_schema: a.B\nsteps:\n  - {name: a, output_schema: a.B, models: [{name: m}], topics: {in: x, retry: x}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, s := range w.Steps {
			if s.Topics.In == "" || s.Output == "" || s.Group == "" || s.Assertions.Batch.MinPassFraction == nil {
				t.Fatalf("loaded step %q lacks its defaults: %+v", s.Name, s)
			}
			for _, m := range s.Models {
				if m.Timeout <= 0 {
					t.Fatalf("model %q loaded with timeout %v", m.Name, m.Timeout)
				}
			}
			_ = w.Line("steps", s.Index, "policy", "params", "window")
		}
	})
}
