package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// TestUserWorkflowSkipsTheDemo: a workflow of the user's own schemas and
// a served model compiles without loading the digits data set; the demo
// workflow, whose models are digits kinds, loads it.
func TestUserWorkflowSkipsTheDemo(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"order.avsc":  `{"type": "record", "name": "Order", "namespace": "shop", "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}`,
		"scored.avsc": `{"type": "record", "name": "Scored", "namespace": "shop", "fields": [{"name": "id", "type": "string"}, {"name": "fraud", "type": "double"}]}`,
		"wf.yaml": `workflow: shop
input_schema: shop.Order
schemas: [order.avsc, scored.avsc]
steps:
  - name: fraud
    output_schema: shop.Scored
    models:
      - name: scorer
        kind: kserve-v2
        url: http://127.0.0.1:1
        model: fraud
        inputs: [{tensor: x, fields: [amount]}]
        outputs: [{tensor: p, field: fraud}]
        carry: [id]
    assertions:
      records:
        - {name: probability, expr: output.fraud >= 0.0 && output.fraud <= 1.0}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := compile(filepath.Join(dir, "wf.yaml"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.steps) != 1 || l.steps[0].Models[0].Name != "scorer" {
		t.Fatalf("compiled %d steps", len(l.steps))
	}
	if l.builtin.loadedDigits.Load() {
		t.Error("compiling a workflow that names no digits model loaded the digits data set")
	}
	demo, err := compile("", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !demo.builtin.loadedDigits.Load() {
		t.Error("compiling the demo workflow did not load the digits data set its models need")
	}
}
