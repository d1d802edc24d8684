package workflow

import (
	"strings"
	"testing"
	"time"
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

func TestServedModelDefaults(t *testing.T) {
	w, err := Parse("served.yaml", []byte(served))
	if err != nil {
		t.Fatal(err)
	}
	m := w.Steps[0].Models[0]
	checks := []struct{ got, want any }{
		{m.Kind, KindKServe},
		{m.Protocol, "rest"},
		{m.Served, "digits-mlp"},
		{m.Inputs[0].Datatype, "FP64"},
		{*m.Retries, 2},
		{*m.Binary, true},
		{m.Breaker.Failures, 5},
		{time.Duration(m.Breaker.Cooldown), 10 * time.Second},
		{*m.PriceMS, 3.0},
		{m.Builtin, ""},
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
		{"no model name", "        model: digits-mlp\n", "", "served.yaml:9:", "`model:` is missing"},
		{"no inputs", "        inputs: [{tensor: input-0, fields: [pixels]}]\n", "", "served.yaml:7:", "inputs is empty"},
		{"bad datatype", "fields: [pixels]}", "fields: [pixels], datatype: FP8}", "served.yaml:11:", `input datatype "FP8" is not supported`},
		{"bad reduce", "reduce: max", "reduce: mean", "served.yaml:14:", `reduce "mean" is not known`},
		{"builtin fields on a served model", "        price_ms: 3\n", "        price_ms: 3\n        builtin: digits.knn\n", "served.yaml:16:", "builtin and options are for kind builtin"},
		{"served fields on a builtin model", "kind: kserve-v2", "kind: builtin", "served.yaml:9:", "url is for served models; add `kind: kserve-v2`"},
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
			_, err := Parse("served.yaml", []byte(y))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantLine) || !strings.Contains(err.Error(), tc.wantWords) {
				t.Errorf("error %q, want %q and %q", err, tc.wantLine, tc.wantWords)
			}
		})
	}
}
