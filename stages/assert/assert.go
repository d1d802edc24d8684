package assert

import (
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Spec is what a workflow file says about a step's assertions.
type Spec struct {
	Records         []Named
	MinPassFraction float64
	BatchExpr       string
	// Input and Output, when set, describe the records the step reads and
	// writes: record assertions naming fields they lack, or comparing a
	// field with a literal of another kind, do not compile.
	Input, Output *Fields
}

// Named is one named record assertion.
type Named struct {
	Name string
	Expr string
}

// ExprError is a compile error in one expression; Index is the record
// assertion's position, or -1 for the batch expression.
type ExprError struct {
	Index int
	Name  string
	Err   error
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("assertion %q does not compile: %v", e.Name, e.Err)
}

func (e *ExprError) Unwrap() error { return e.Err }

// Program is a step's compiled assertions. It is safe for concurrent use.
type Program struct {
	names   []string
	records []cel.Program
	minPass float64
	batch   cel.Program
}

// Result is the judgement of one batch.
type Result struct {
	Size    int
	Passed  int   // records passing every record assertion
	Failed  []int // per record assertion, records failing it
	Verdict bool  // the batch passes
	Reason  string
}

// Compile compiles the spec's expressions.
func Compile(spec Spec) (*Program, error) {
	env, err := cel.NewEnv(
		cel.Variable("input", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("output", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(), ext.Math(), ext.Lists(),
		listFunc("sum", sum), listFunc("mean", mean), listFunc("roughness", Roughness),
	)
	if err != nil {
		return nil, err
	}
	p := &Program{minPass: spec.MinPassFraction}
	vars := map[string]*Fields{}
	if spec.Input != nil {
		vars["input"] = spec.Input
	}
	if spec.Output != nil {
		vars["output"] = spec.Output
	}
	for i, a := range spec.Records {
		prg, err := compileBool(env, a.Expr, vars)
		if err != nil {
			return nil, &ExprError{Index: i, Name: a.Name, Err: err}
		}
		p.names = append(p.names, a.Name)
		p.records = append(p.records, prg)
	}
	if strings.TrimSpace(spec.BatchExpr) != "" {
		benv, err := cel.NewEnv(cel.Variable("batch", cel.MapType(cel.StringType, cel.DynType)), ext.Math())
		if err != nil {
			return nil, err
		}
		prg, err := compileBool(benv, spec.BatchExpr, nil)
		if err != nil {
			return nil, &ExprError{Index: -1, Name: "batch", Err: err}
		}
		p.batch = prg
	}
	return p, nil
}

func compileBool(env *cel.Env, expr string, vars map[string]*Fields) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if err := checkFields(ast, vars); err != nil {
		return nil, err
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("%q evaluates to %s; an assertion must be true or false", expr, t)
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

// Names lists the record assertions in order.
func (p *Program) Names() []string { return p.names }

// Evaluate judges a batch: in[i] is the input record that produced out[i].
func (p *Program) Evaluate(in, out []map[string]any) Result {
	r := Result{Size: len(out), Failed: make([]int, len(p.records))}
	var firstErr string
	vars := &recordVars{}
	for i := range out {
		vars.in, vars.out = in[i], out[i]
		ok := true
		for j, prg := range p.records {
			v, _, err := prg.Eval(vars)
			if err != nil || v != types.True {
				r.Failed[j]++
				ok = false
				if err != nil && firstErr == "" {
					firstErr = fmt.Sprintf("assertion %q could not be evaluated on record %d: %v", p.names[j], i, err)
				}
			}
		}
		if ok {
			r.Passed++
		}
	}
	frac := 1.0
	if r.Size > 0 {
		frac = float64(r.Passed) / float64(r.Size)
	}
	var reasons []string
	if frac < p.minPass {
		reasons = append(reasons, fmt.Sprintf("%d of %d records passed (%.0f%% < required %.0f%%)", r.Passed, r.Size, 100*frac, 100*p.minPass))
		for j, n := range r.Failed {
			if n > 0 {
				reasons = append(reasons, fmt.Sprintf("%s failed on %d", p.names[j], n))
			}
		}
	}
	if p.batch != nil {
		v, _, err := p.batch.Eval(map[string]any{"batch": p.aggregates(r, frac, out)})
		switch {
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("batch rule could not be evaluated: %v", err))
		case v != types.True:
			reasons = append(reasons, "batch rule is false")
		}
	}
	if firstErr != "" {
		reasons = append(reasons, firstErr)
	}
	r.Verdict = frac >= p.minPass && (p.batch == nil || !containsPrefix(reasons, "batch rule"))
	if !r.Verdict {
		r.Reason = strings.Join(reasons, "; ")
	}
	return r
}

// recordVars binds a record predicate's variables without building a map
// per record: the hot path evaluates every predicate on every record.
type recordVars struct{ in, out map[string]any }

func (v *recordVars) ResolveName(name string) (any, bool) {
	switch name {
	case "input":
		return v.in, true
	case "output":
		return v.out, true
	}
	return nil, false
}

func (v *recordVars) Parent() interpreter.Activation { return nil }

func containsPrefix(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func (p *Program) aggregates(r Result, frac float64, out []map[string]any) map[string]any {
	failed := make(map[string]any, len(p.names))
	for j, n := range p.names {
		failed[n] = int64(r.Failed[j])
	}
	sums := map[string]float64{}
	counts := map[string]float64{}
	for _, rec := range out {
		for k, v := range rec {
			if f, ok := models.Number(v); ok {
				sums[k] += f
				counts[k]++
			}
		}
	}
	means := make(map[string]any, len(sums))
	for k, s := range sums {
		means[k] = s / counts[k]
	}
	return map[string]any{
		"size": int64(r.Size), "passed": int64(r.Passed), "pass_fraction": frac,
		"failed": failed, "mean": means,
	}
}

// listFunc declares a CEL function from list to double.
func listFunc(name string, f func([]float64) float64) cel.EnvOption {
	return cel.Function(name, cel.Overload(name+"_list", []*cel.Type{cel.ListType(cel.DynType)}, cel.DoubleType,
		cel.UnaryBinding(func(v ref.Val) ref.Val {
			l, ok := v.(traits.Lister)
			if !ok {
				return types.NewErr("%s: want a list, got %s", name, v.Type())
			}
			n := int(l.Size().(types.Int))
			xs := make([]float64, n)
			for i := 0; i < n; i++ {
				switch e := l.Get(types.Int(i)).(type) {
				case types.Double:
					xs[i] = float64(e)
				case types.Int:
					xs[i] = float64(e)
				case types.Uint:
					xs[i] = float64(e)
				default:
					return types.NewErr("%s: element %d is %s, not a number", name, i, e.Type())
				}
			}
			return types.Double(f(xs))
		})))
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return sum(xs) / float64(len(xs))
}

// Roughness is the mean absolute difference of consecutive elements, the
// roughness(list) assertions call: a total-variation measure for signals
// and for images flattened row-major. It is 0 for fewer than two elements.
func Roughness(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	s := 0.0
	for i := 1; i < len(xs); i++ {
		s += math.Abs(xs[i] - xs[i-1])
	}
	return s / float64(len(xs)-1)
}
