package celmodel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/celmodel"
	"github.com/flexiflow/flexiflow/stages/models/modeltest"
)

func build(t *testing.T, cfg string) (models.Model, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &n); err != nil {
		t.Fatal(err)
	}
	k := celmodel.Kind()
	c, err := k.Decode("rules", n.Content[0])
	if err != nil {
		return nil, err
	}
	return c.New(nil)
}

func orders(n int) []models.Record {
	recs := make([]models.Record, n)
	for i := range recs {
		recs[i] = models.Record{"id": fmt.Sprintf("o%d", i), "amount": float64(i * 300), "items": int32(i % 4)}
	}
	return recs
}

func TestConformance(t *testing.T) {
	modeltest.Run(t, modeltest.Case{
		New: func(t *testing.T) models.Model {
			m, err := build(t, "fields: {fraud: 'input.amount > 1000.0 ? 0.9 : 0.05', big: 'input.items >= 2'}\ncarry: [id]")
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
		Records:       orders,
		Answers:       func(in, out models.Record) bool { return in["id"] == out["id"] },
		Bad:           []models.Record{{"id": "x", "amount": 1.0, "items": int32(1)}, {"id": "y"}},
		BadWords:      []string{`record 1 (id "y")`, "field ", "no such key"},
		Deterministic: true,
	})
}

func TestValues(t *testing.T) {
	m, err := build(t, "fields: {fraud: 'input.amount > 1000.0 ? 0.9 : 0.05', n: 'input.items * 2', tag: '\"o-\" + input.id', parts: '[input.items, 1]'}")
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Predict(context.Background(), orders(5))
	if err != nil {
		t.Fatal(err)
	}
	if out[4]["fraud"] != 0.9 || out[1]["fraud"] != 0.05 || out[3]["n"] != int64(6) || out[2]["tag"] != "o-o2" {
		t.Errorf("outputs %v", out)
	}
	if p, ok := out[3]["parts"].([]any); !ok || len(p) != 2 || p[0] != int64(3) {
		t.Errorf("parts %v", out[3]["parts"])
	}
}

func TestConfigErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		"fields: {}":                      "fields is empty",
		"carry: [id]":                     "fields is missing",
		"fields: {x: 'input.amount >'}":   "field x: \"input.amount >\" does not compile",
		"fields: {x: '1'}\nfield: {y: 2}": `unknown key "field" (did you mean "fields"?)`,
	} {
		_, err := build(t, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", cfg, err, want)
		}
	}
}
