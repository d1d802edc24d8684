package assert

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func recs(vals ...float64) (in, out []map[string]any) {
	for i, v := range vals {
		in = append(in, map[string]any{"x": float64(i), "pixels": []any{0.0, 4.0, 0.0, 4.0}})
		out = append(out, map[string]any{"confidence": v, "label": int32(i % 2), "pixels": []any{1.0, 1.0, 1.0, 2.0}})
	}
	return in, out
}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name        string
		spec        Spec
		vals        []float64
		wantPassed  int
		wantVerdict bool
		wantReason  string
	}{
		{"all pass", Spec{Records: []Named{{"c", "output.confidence >= 0.5"}}, MinPassFraction: 1}, []float64{0.9, 0.8}, 2, true, ""},
		{"fraction met", Spec{Records: []Named{{"c", "output.confidence >= 0.5"}}, MinPassFraction: 0.5}, []float64{0.9, 0.1}, 1, true, ""},
		{"fraction missed", Spec{Records: []Named{{"c", "output.confidence >= 0.5"}}, MinPassFraction: 0.8}, []float64{0.9, 0.1}, 1, false, "1 of 2 records passed (50% < required 80%); c failed on 1"},
		{"input and output together", Spec{Records: []Named{{"c", "output.label == int(input.x) % 2"}}, MinPassFraction: 1}, []float64{0, 0, 0}, 3, true, ""},
		{"list functions", Spec{Records: []Named{{"smooth", "roughness(output.pixels) < roughness(input.pixels) && mean(output.pixels) == 1.25 && sum(input.pixels) == 8.0"}}, MinPassFraction: 1}, []float64{1}, 1, true, ""},
		{"missing field fails with a reason", Spec{Records: []Named{{"c", "output.score > 0.5"}}, MinPassFraction: 1}, []float64{1}, 0, false, "could not be evaluated on record 0: no such key: score"},
		{"batch rule", Spec{Records: []Named{{"c", "true"}}, MinPassFraction: 0, BatchExpr: "batch.mean.confidence >= 0.5 && batch.pass_fraction == 1.0"}, []float64{0.2, 0.3}, 2, false, "batch rule is false"},
		{"batch rule passes", Spec{Records: []Named{{"c", "output.confidence > 0.25"}}, MinPassFraction: 0, BatchExpr: "batch.failed.c == 1 && batch.size == 2"}, []float64{0.2, 0.3}, 1, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			in, out := recs(c.vals...)
			r := p.Evaluate(in, out)
			if r.Passed != c.wantPassed || r.Verdict != c.wantVerdict {
				t.Errorf("passed %d verdict %v, want %d %v (reason %q)", r.Passed, r.Verdict, c.wantPassed, c.wantVerdict, r.Reason)
			}
			if c.wantReason != "" && !strings.Contains(r.Reason, c.wantReason) {
				t.Errorf("reason %q does not contain %q", r.Reason, c.wantReason)
			}
			if c.wantVerdict && r.Reason != "" {
				t.Errorf("passing batch has a reason: %q", r.Reason)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		spec  Spec
		index int
	}{
		{Spec{Records: []Named{{"ok", "true"}, {"broken", "output.x >"}}}, 1},
		{Spec{Records: []Named{{"number", "1 + 2"}}}, 0},
		{Spec{Records: []Named{{"unknown var", "model.x > 1"}}}, 0},
		{Spec{BatchExpr: "batch.size +"}, -1},
	}
	for _, c := range cases {
		_, err := Compile(c.spec)
		var ee *ExprError
		if !errors.As(err, &ee) || ee.Index != c.index {
			t.Errorf("%+v: got %v, want an ExprError at index %d", c.spec, err, c.index)
		}
	}
}

func TestRoughness(t *testing.T) {
	if got := Roughness([]float64{0, 2, 0, 2}); got != 2 {
		t.Errorf("roughness = %g, want 2", got)
	}
	if got := Roughness([]float64{3}); got != 0 {
		t.Errorf("roughness of one element = %g", got)
	}
	if !math.IsNaN(mean(nil)) {
		t.Error("mean of nothing should be NaN")
	}
}
