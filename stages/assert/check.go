package assert

import (
	"fmt"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/flexiflow/flexiflow/stages/suggest"
)

// Fields describes the records a variable (input or output) holds, so that
// assertions can be checked against them when a workflow is loaded: a field
// that does not exist, or compared with a literal of another kind, is a
// mistake every batch would otherwise fail on at run time.
type Fields struct {
	Record string            // the record schema's full name, for messages
	Kinds  map[string]string // field → "number", "string", "bool", or "" (not checked)
}

// checkFields walks a compiled assertion for input.f and output.f and
// refuses fields the schemas lack and comparisons of a field with a literal
// of another kind.
func checkFields(ast *cel.Ast, vars map[string]*Fields) error {
	var errs []string
	field := func(e celast.Expr) (string, *Fields, string, bool) {
		if e.Kind() != celast.SelectKind || e.AsSelect().IsTestOnly() {
			return "", nil, "", false
		}
		sel := e.AsSelect()
		op := sel.Operand()
		if op.Kind() != celast.IdentKind {
			return "", nil, "", false
		}
		f := vars[op.AsIdent()]
		if f == nil {
			return "", nil, "", false
		}
		return op.AsIdent(), f, sel.FieldName(), true
	}
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			v, f, name, ok := field(e)
			if !ok {
				return
			}
			if _, known := f.Kinds[name]; !known {
				names := make([]string, 0, len(f.Kinds))
				for n := range f.Kinds {
					names = append(names, n)
				}
				sort.Strings(names)
				msg := fmt.Sprintf("%s.%s: %s records (%s) have no field %q", v, name, v, f.Record, name)
				if s := suggest.Closest(name, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s.%s?)", v, s)
				}
				errs = append(errs, msg+"; fields: "+strings.Join(names, ", "))
			}
		case celast.CallKind:
			call := e.AsCall()
			switch call.FunctionName() {
			case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
			default:
				return
			}
			args := call.Args()
			if len(args) != 2 {
				return
			}
			for i, a := range args {
				v, f, name, ok := field(a)
				lit := args[1-i]
				if !ok || lit.Kind() != celast.LiteralKind {
					continue
				}
				want, have := f.Kinds[name], literalKind(lit)
				if want != "" && have != "" && want != have {
					errs = append(errs, fmt.Sprintf("%s.%s is a %s in %s, compared with the %s %v", v, name, want, f.Record, have, lit.AsLiteral()))
				}
			}
		}
	}))
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// literalKind is the field kind a CEL literal compares like.
func literalKind(e celast.Expr) string {
	switch e.AsLiteral().(type) {
	case types.Int, types.Uint, types.Double:
		return "number"
	case types.String:
		return "string"
	case types.Bool:
		return "bool"
	}
	return ""
}
