package kserve_test

import (
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/middleware"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

const served = `workflow: served
input_schema: flexiflow.demo.DigitImage
steps:
  - name: classify
    output_schema: flexiflow.demo.DigitPrediction
    models:
      - name: mlp
        kind: kserve-v2
        url: http://127.0.0.1:8080
        model: digits-mlp
        inputs: [{tensor: input-0, fields: [pixels]}]
        outputs:
          - {tensor: predict, field: predicted}
          - {tensor: predict_proba, field: confidence, reduce: max}
        price_ms: 3
`

// compileServed loads and compiles a workflow whose models are all
// kserve-v2, against a registry holding that kind alone.
func compileServed(t *testing.T, yaml string) (*workflow.Workflow, []*stages.Step, error) {
	t.Helper()
	w, err := workflow.Parse("served.yaml", []byte(yaml))
	if err != nil {
		return nil, nil, err
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if err := digits.AddSchemas(reg); err != nil {
		t.Fatal(err)
	}
	steps, err := stages.Compile(w, stages.Deps{Models: models.NewRegistry(kserve.Kind()), Schemas: reg})
	return w, steps, err
}

func TestServedModelDefaults(t *testing.T) {
	w, steps, err := compileServed(t, served)
	if err != nil {
		t.Fatal(err)
	}
	m := w.Steps[0].Models[0]
	cfg := middleware.Innermost(steps[0].Models[0].Model).(*kserve.Model).Config()
	checks := []struct{ got, want any }{
		{m.Kind, kserve.KindName},
		{cfg.Protocol, "rest"},
		{cfg.Model, "digits-mlp"},
		{cfg.Inputs[0].Datatype, "FP64"},
		{*m.Retries, 2},
		{cfg.Binary, true},
		{m.Breaker.Failures, 5},
		{time.Duration(m.Breaker.Cooldown), 10 * time.Second},
		{*m.PriceMS, 3.0},
		{m.Builtin, ""},
		{steps[0].Models[0].Priced, true},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %v, want %v", i, c.got, c.want)
		}
	}
}

func TestServedModelErrors(t *testing.T) {
	cases := []struct {
		name      string
		from, to  string
		wantLine  string
		wantWords string
	}{
		{"no url", "url: http://127.0.0.1:8080", "url: ''", "served.yaml:9:", "must be the server's REST address"},
		{"bad protocol", "model: digits-mlp", "model: digits-mlp\n        protocol: soap", "served.yaml:11:", `protocol "soap" is not known; use rest or grpc`},
		{"grpc url with a path", "url: http://127.0.0.1:8080", "url: 127.0.0.1:8081/x\n        protocol: grpc", "served.yaml:9:", "must be the server's gRPC address"},
		{"no model name", "        model: digits-mlp\n", "", "served.yaml:7:", "model is missing: The model's name on the server."},
		{"no inputs", "        inputs: [{tensor: input-0, fields: [pixels]}]\n", "", "served.yaml:7:", "inputs is missing"},
		{"empty inputs", "inputs: [{tensor: input-0, fields: [pixels]}]", "inputs: []", "served.yaml:11:", "inputs is empty"},
		{"bad datatype", "fields: [pixels]}", "fields: [pixels], datatype: FP8}", "served.yaml:11:", `input datatype "FP8" is not supported`},
		{"bad reduce", "reduce: max", "reduce: mean", "served.yaml:14:", `reduce "mean" is not known`},
		{"misspelt key", "model: digits-mlp", "modle: digits-mlp", "served.yaml:10:", `unknown key "modle" (did you mean "model"?)`},
		{"wrong type", "url: http://127.0.0.1:8080", "url: [a, b]", "served.yaml:9:", "want a string"},
		{"builtin fields on a served model", "        price_ms: 3\n", "        price_ms: 3\n        builtin: digits.knn\n", "served.yaml:16:", "builtin and options are for kind builtin"},
		{"served fields on a builtin model", "kind: kserve-v2", "kind: builtin", "served.yaml:8:", "its key url is kind kserve-v2's: set `kind: kserve-v2`"},
		{"negative price", "price_ms: 3", "price_ms: -1", "served.yaml:15:", "price_ms must not be negative"},
		{"negative retries", "price_ms: 3", "price_ms: 3\n        retries: -1", "served.yaml:16:", "retries must not be negative"},
		{"two token sources", "price_ms: 3", "price_ms: 3\n        auth: {token_env: TOK, token_file: /t}", "served.yaml:16:", "token_env or token_file, not both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(served, tc.from, tc.to, 1)
			if y == served {
				t.Fatalf("replacing %q changed nothing", tc.from)
			}
			_, _, err := compileServed(t, y)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantLine) || !strings.Contains(err.Error(), tc.wantWords) {
				t.Errorf("error %q, want %q and %q", err, tc.wantLine, tc.wantWords)
			}
		})
	}
}
