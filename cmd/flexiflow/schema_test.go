package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/schemas"
)

// TestSchemaPrint: the schemas schema print gives are the ones on the
// topics: a consumer that knows only the printed envelope decodes a batch
// the step wrote, and the source schema is input_schema.
func TestSchemaPrint(t *testing.T) {
	const wf = "../../examples/fraud/workflow.yaml"
	var out strings.Builder
	root := newRoot()
	root.SetArgs([]string{"schema", "print", "--workflow", wf})
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var printed []topicSchema
	if err := json.Unmarshal([]byte(out.String()), &printed); err != nil {
		t.Fatalf("schema print: %v\n%s", err, out.String())
	}
	roles := map[string]topicSchema{}
	for _, p := range printed {
		roles[p.Role] = p
	}
	for _, want := range []string{"source events", "step score input", "step decide input", "step decide output", "sink records"} {
		if _, ok := roles[want]; !ok {
			t.Errorf("no %q in %v", want, printed)
		}
	}
	l, err := compile(wf, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := l.steps[0].In.Encode(nil, &schemas.Batch{ID: "b1", Workflow: "fraud", Tried: []string{},
		Records: []map[string]any{{"id": "o1", "amount": 12.5, "country": "DE"}}})
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(roles["step score input"].Schema))
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := codec.NativeFromBinary(msg[10:]) // after the single-object header
	if err != nil {
		t.Fatalf("the printed envelope does not decode a batch of fraud.score.in: %v", err)
	}
	recs := v.(map[string]any)["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["id"] != "o1" {
		t.Errorf("decoded %v", v)
	}
	if fp, _ := schemas.Fingerprint(msg); codec.Rabin != fp {
		t.Errorf("printed schema's fingerprint %#x, the topic's records carry %#x", codec.Rabin, fp)
	}
	if !strings.Contains(string(roles["source events"].Schema), `"Order"`) || roles["source events"].Topics[0] != "orders" {
		t.Errorf("source %+v", roles["source events"])
	}
}
