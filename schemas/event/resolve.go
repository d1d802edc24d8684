package event

import (
	"fmt"
	"slices"
	"strings"
)

// Avro schema resolution (the specification's "Schema Resolution"): data
// written with a writer schema, read as the reader schema. Fields match by
// name (or the reader field's aliases); a reader field the writer lacks
// takes its default; a writer field the reader lacks is skipped; int,
// long and float widen (int→long→float→double) and string and bytes
// convert; an enum symbol the reader lacks takes the reader enum's
// default; a union on either side resolves by branch. Nested records must
// have the same unqualified name; the top-level record's name is not
// compared, since a producer's schema is often named in its own namespace.

// schemaSet is one side's parsed schema and its named types.
type schemaSet = Codec

func newSchemaSet(root any) *schemaSet {
	s := &Codec{root: root, named: map[string]any{}}
	s.collect(root, "")
	return s
}

// kind is the Avro type a (resolved) schema is: a primitive name, or
// record, enum, array, map, fixed, union.
func kind(t any) string {
	switch x := t.(type) {
	case string:
		return x
	case []any:
		return "union"
	case map[string]any:
		if s, ok := x["type"].(string); ok {
			return s
		}
		return kind(x["type"])
	}
	return fmt.Sprint(t)
}

func shortName(t any) string {
	m, _ := t.(map[string]any)
	n, _ := m["name"].(string)
	if i := strings.LastIndex(n, "."); i >= 0 {
		n = n[i+1:]
	}
	return n
}

// promotes reports whether a writer primitive w is read as reader r.
func promotes(w, r string) bool {
	switch w {
	case r:
		return true
	case "int":
		return r == "long" || r == "float" || r == "double"
	case "long":
		return r == "float" || r == "double"
	case "float":
		return r == "double"
	case "string":
		return r == "bytes"
	case "bytes":
		return r == "string"
	}
	return false
}

// matches reports whether writer type wt (not a union) may be read as
// reader type rt (not a union) at the top of both, without looking inside.
func matches(wt, rt any, top bool) bool {
	wk, rk := kind(wt), kind(rt)
	if primitive(wk) && primitive(rk) {
		return promotes(wk, rk)
	}
	if wk != rk {
		return false
	}
	switch wk {
	case "record", "enum", "fixed":
		if !top && shortName(wt) != shortName(rt) && !hasAlias(rt, shortName(wt)) {
			return false
		}
		if wk == "fixed" {
			return wt.(map[string]any)["size"] == rt.(map[string]any)["size"]
		}
	}
	return true
}

func hasAlias(t any, name string) bool {
	m, _ := t.(map[string]any)
	for _, a := range asList(m["aliases"]) {
		if s, _ := a.(string); s == name || strings.HasSuffix(s, "."+name) {
			return true
		}
	}
	return false
}

// compatible checks, before any event is read, that every reader field
// can be filled from writer data: the check a registry's BACKWARD mode
// makes, for the parts that do not depend on which union branch an event
// holds (those are checked per event).
func compatible(w, r *schemaSet, wt, rt any, wns, rns, path string, top bool, seen map[string]bool) error {
	wt, wns = w.resolve(wt, wns)
	rt, rns = r.resolve(rt, rns)
	if kind(wt) == "union" || kind(rt) == "union" {
		return nil
	}
	if !matches(wt, rt, top) {
		return &Error{Field: path, Msg: fmt.Sprintf("the writer's %s cannot be read as the reader's %s", typeWords(wt), typeWords(rt))}
	}
	switch kind(rt) {
	case "record":
		key := fullName(wt.(map[string]any), wns) + ">" + fullName(rt.(map[string]any), rns)
		if seen[key] {
			return nil
		}
		seen[key] = true
		for _, f := range asList(rt.(map[string]any)["fields"]) {
			rf := f.(map[string]any)
			fp := join(path, rf["name"].(string))
			wf := writerField(wt, rf)
			if wf == nil {
				if _, ok := rf["default"]; !ok && !isNullable(rf["type"]) {
					return &Error{Field: fp, Msg: "the writer's schema lacks it and the reader's gives it no default"}
				}
				continue
			}
			if err := compatible(w, r, wf["type"], rf["type"], wns, rns, fp, false, seen); err != nil {
				return err
			}
		}
	case "array":
		return compatible(w, r, wt.(map[string]any)["items"], rt.(map[string]any)["items"], wns, rns, path+"[]", false, seen)
	case "map":
		return compatible(w, r, wt.(map[string]any)["values"], rt.(map[string]any)["values"], wns, rns, path+"{}", false, seen)
	}
	return nil
}

// writerField is the writer record's field that reader field rf reads:
// the same name, or one of rf's aliases.
func writerField(wt any, rf map[string]any) map[string]any {
	fields := asList(wt.(map[string]any)["fields"])
	// The field's own name first: an alias only stands in for a writer
	// field the reader has no field of the same name for.
	for _, names := range [][]any{{rf["name"]}, asList(rf["aliases"])} {
		for _, f := range fields {
			if wf := f.(map[string]any); slices.Contains(names, wf["name"]) {
				return wf
			}
		}
	}
	return nil
}

// readerBranch is the branch of reader union ru that writer type wt (not a
// union) is read as: the first of the same type, else the first it
// promotes to (an int read into ["null","long","int"] stays an int, a long
// into ["double","long"] a long); nil if none.
func readerBranch(r *schemaSet, wt any, ru []any, rns string) any {
	for _, exact := range []bool{true, false} {
		for _, b := range ru {
			rb, _ := r.resolve(b, rns)
			if kind(rb) == "union" || !matches(wt, rb, false) {
				continue
			}
			if !exact || kind(rb) == kind(wt) {
				return b
			}
		}
	}
	return nil
}

// convert turns v, a native value of writer type wt, into the native value
// of reader type rt.
func convert(w, r *schemaSet, wt, rt, v any, wns, rns, path string, top bool) (any, error) {
	wt, wns = w.resolve(wt, wns)
	rt, rns = r.resolve(rt, rns)
	if wu, ok := wt.([]any); ok {
		branch, inner := any(nil), any(nil)
		switch m, ok := v.(map[string]any); {
		case v == nil:
			branch = "null"
		case ok && len(m) == 1:
			for name, x := range m {
				for _, b := range wu {
					if w.branchName(b, wns) == name {
						branch, inner = b, x
					}
				}
			}
		}
		if branch == nil {
			return nil, &Error{Field: path, Msg: fmt.Sprintf("a value of none of the writer's %s", typeWords(wu))}
		}
		return convert(w, r, branch, rt, inner, wns, rns, path, top)
	}
	if ru, ok := rt.([]any); ok {
		b := readerBranch(r, wt, ru, rns)
		if b == nil {
			return nil, &Error{Field: path, Msg: fmt.Sprintf("the writer's %s is none of the reader's %s", typeWords(wt), typeWords(ru))}
		}
		if kind(wt) == "null" {
			return nil, nil
		}
		out, err := convert(w, r, wt, b, v, wns, rns, path, false)
		if err != nil {
			return nil, err
		}
		return map[string]any{r.branchName(b, rns): out}, nil
	}
	if !matches(wt, rt, top) {
		return nil, &Error{Field: path, Msg: fmt.Sprintf("the writer's %s cannot be read as the reader's %s", typeWords(wt), typeWords(rt))}
	}
	wk, rk := kind(wt), kind(rt)
	switch rk {
	case "record":
		in, _ := v.(map[string]any)
		out := make(map[string]any, len(asList(rt.(map[string]any)["fields"])))
		for _, f := range asList(rt.(map[string]any)["fields"]) {
			rf := f.(map[string]any)
			name := rf["name"].(string)
			fp := join(path, name)
			wf := writerField(wt, rf)
			if wf == nil {
				def, ok := rf["default"]
				if !ok {
					if isNullable(rf["type"]) {
						out[name] = nil
						continue
					}
					return nil, &Error{Field: fp, Msg: "the writer's schema lacks it and the reader's gives it no default"}
				}
				if u, ok := rf["type"].([]any); ok && def == nil && slices.Contains(u, any("null")) {
					out[name] = nil
					continue
				}
				dv, err := r.fromJSON(rf["type"], jsonNumbers(def), fp, rns)
				if err != nil {
					return nil, err
				}
				out[name] = dv
				continue
			}
			fv, err := convert(w, r, wf["type"], rf["type"], in[wf["name"].(string)], wns, rns, fp, false)
			if err != nil {
				return nil, err
			}
			out[name] = fv
		}
		return out, nil
	case "enum":
		s, _ := v.(string)
		if slices.Contains(asList(rt.(map[string]any)["symbols"]), any(s)) {
			return s, nil
		}
		if d, ok := rt.(map[string]any)["default"].(string); ok {
			return d, nil
		}
		return nil, &Error{Field: path, Msg: fmt.Sprintf("symbol %q is not one of the reader's %v and the reader's enum has no default", s, asList(rt.(map[string]any)["symbols"]))}
	case "array":
		in, _ := v.([]any)
		out := make([]any, len(in))
		for i, x := range in {
			cv, err := convert(w, r, wt.(map[string]any)["items"], rt.(map[string]any)["items"], x, wns, rns, fmt.Sprintf("%s[%d]", path, i), false)
			if err != nil {
				return nil, err
			}
			out[i] = cv
		}
		return out, nil
	case "map":
		in, _ := v.(map[string]any)
		out := make(map[string]any, len(in))
		for k, x := range in {
			cv, err := convert(w, r, wt.(map[string]any)["values"], rt.(map[string]any)["values"], x, wns, rns, join(path, k), false)
			if err != nil {
				return nil, err
			}
			out[k] = cv
		}
		return out, nil
	}
	return promote(v, wk, rk), nil
}

// promote widens a primitive native value from writer type w to reader r.
func promote(v any, w, r string) any {
	if w == r {
		return v
	}
	switch x := v.(type) {
	case int32:
		switch r {
		case "long":
			return int64(x)
		case "float":
			return float32(x)
		case "double":
			return float64(x)
		}
	case int64:
		switch r {
		case "float":
			return float32(x)
		case "double":
			return float64(x)
		}
	case float32:
		return float64(x)
	case string:
		return []byte(x)
	case []byte:
		return string(x)
	}
	return v
}
