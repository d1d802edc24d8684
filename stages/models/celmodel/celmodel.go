// Package celmodel is the `cel` model kind: a model whose output fields
// are CEL expressions over the input record. It is what a rule, a
// heuristic or a lookup written by hand looks like next to learned models
// (a cheap first try, or the fallback a cascade ends on), and the smallest
// example of a model kind: this one file is its config, defaults,
// validation, docs and constructor.
//
// A batch enters as decoded input records and leaves as one output record
// per input, each field the value of its expression for that record.
package celmodel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/flexiflow/flexiflow/stages/models"
)

// KindName is what a workflow's `kind:` says for this kind.
const KindName = "cel"

// Config is a cel model's config.
type Config struct {
	Fields map[string]string `yaml:"fields" required:"true" doc:"Output field name to CEL expression over input (the input record), e.g. {fraud: \"input.amount > 1000.0 ? 0.9 : 0.05\"}."`
	Carry  []string          `yaml:"carry" doc:"Input fields copied unchanged into every output record, before the expressions are set."`

	programs map[string]cel.Program
}

// Check compiles every expression; a syntax or type error names its field.
func (c *Config) Check() error {
	env, err := cel.NewEnv(cel.Variable("input", cel.MapType(cel.StringType, cel.DynType)), ext.Strings(), ext.Math(), ext.Lists())
	if err != nil {
		return err
	}
	if len(c.Fields) == 0 {
		return models.Problem([]any{"fields"}, "fields is empty: give at least one output field and its CEL expression")
	}
	var errs []error
	c.programs = map[string]cel.Program{}
	for _, name := range slices.Sorted(maps.Keys(c.Fields)) {
		ast, iss := env.Compile(c.Fields[name])
		if iss.Err() != nil {
			errs = append(errs, models.Problem([]any{"fields", name}, "field %s: %q does not compile: %v", name, c.Fields[name], iss.Err()))
			continue
		}
		prg, err := env.Program(ast)
		if err != nil {
			errs = append(errs, models.Problem([]any{"fields", name}, "field %s: %v", name, err))
			continue
		}
		c.programs[name] = prg
	}
	return errors.Join(errs...)
}

// Kind declares the cel kind for a models.Registry.
func Kind() models.Kind {
	return models.Define(KindName,
		"Output fields computed by CEL expressions over the input record: a hand-written rule or lookup as a model. "+
			"An expression that fails on a record (a missing field, a division by zero) fails the batch with the record and field named.",
		func(c *Config, _ models.Env) (models.Model, error) { return &model{cfg: c}, nil })
}

type model struct{ cfg *Config }

func (m *model) Predict(ctx context.Context, in []models.Record) ([]models.Record, error) {
	out := make([]models.Record, len(in))
	for i, rec := range in {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o := make(models.Record, len(m.cfg.Carry)+len(m.cfg.programs))
		for _, f := range m.cfg.Carry {
			if v, ok := rec[f]; ok {
				o[f] = v
			}
		}
		for name, prg := range m.cfg.programs {
			v, _, err := prg.Eval(map[string]any{"input": rec})
			if err != nil {
				return nil, models.BadInput(fmt.Errorf("record %d%s: field %s: %v", i, id(rec), name, err))
			}
			nv, err := native(v)
			if err != nil {
				return nil, fmt.Errorf("record %d%s: field %s: %v", i, id(rec), name, err)
			}
			o[name] = nv
		}
		out[i] = o
	}
	return out, nil
}

func id(rec models.Record) string {
	if v, ok := rec["id"]; ok {
		return fmt.Sprintf(" (id %q)", fmt.Sprint(v))
	}
	return ""
}

// native turns a CEL value into the Go value an Avro encoder takes.
func native(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return int64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Null:
		return nil, nil
	case traits.Lister:
		n := int(x.Size().(types.Int))
		out := make([]any, n)
		for i := range out {
			e, err := native(x.Get(types.Int(i)))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("the expression gives a %s, which no Avro field takes; give a number, string, bool, bytes or list", v.Type())
}
