package main

import (
	"os"
	"path/filepath"
	"strings"
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

// TestKindNamedDirectly: a builtin kind may be named by kind: with its
// settings on the entry, or by builtin: with them under options; both
// build the same model, and mixing the forms is refused with the line.
func TestKindNamedDirectly(t *testing.T) {
	dir := t.TempDir()
	write := func(models string) string {
		path := filepath.Join(dir, "wf.yaml")
		text := "workflow: d\ninput_schema: flexiflow.demo.DigitImage\nsteps:\n  - name: classify\n    output_schema: flexiflow.demo.DigitPrediction\n    models:\n" + models
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, models := range []string{
		"      - {name: knn, kind: digits.knn, k: 5}\n",
		"      - {name: knn, builtin: digits.knn, options: {k: 5}}\n",
	} {
		if _, err := compile(write(models), zap.NewNop()); err != nil {
			t.Errorf("%s: %v", strings.TrimSpace(models), err)
		}
	}
	for models, want := range map[string]string{
		"      - {name: knn, kind: digits.knn, options: {k: 5}}\n": `wf.yaml:7: model "knn": builtin and options are for kind builtin`,
		"      - {name: knn, kind: digits.knn, k: 0}\n":            `wf.yaml:7: step "classify" model "knn" (kind digits.knn): k: 0 is out of range`,
		"      - {name: knn, kind: digits.knn, kk: 5}\n":           `wf.yaml:7: step "classify" model "knn" (kind digits.knn): unknown key "kk" (did you mean "k"?)`,
	} {
		_, err := compile(write(models), zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", strings.TrimSpace(models), err, want)
		}
	}
}
