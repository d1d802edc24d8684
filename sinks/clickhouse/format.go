package clickhouse

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats a Result writes itself in.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Write writes the result in format: "table" (aligned columns for people),
// "json" (an array of objects, keys in column order) or "csv" (a header
// line, then one line per row).
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case FormatTable, "":
		return r.writeTable(w)
	case FormatJSON:
		return r.writeJSON(w)
	case FormatCSV:
		return r.writeCSV(w)
	}
	return fmt.Errorf("unknown output format %q: use table, json or csv", format)
}

// names are the column names, the header of the table and CSV forms.
func (r *Result) names() []string {
	names := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = c.Name
	}
	return names
}

func (r *Result) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.names(), "\t"))
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = formatValue(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func (r *Result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.names()); err != nil {
		return err
	}
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			if f, ok := v.(float64); ok && !math.IsNaN(f) {
				cells[i] = strconv.FormatFloat(f, 'g', -1, 64)
				continue
			}
			cells[i] = formatValue(v)
		}
		if err := cw.Write(cells); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (r *Result) writeJSON(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("[")
	for i, row := range r.Rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for j, v := range row {
			if j > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(r.Columns[j].Name)
			b.Write(k)
			b.WriteString(": ")
			val, err := json.Marshal(jsonValue(v))
			if err != nil {
				return err
			}
			b.Write(val)
		}
		b.WriteString("}")
	}
	if len(r.Rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := w.Write(b.Bytes())
	return err
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case float64:
		if math.IsNaN(x) {
			return "-"
		}
		return strconv.FormatFloat(x, 'f', 4, 64)
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000000Z")
	case bool:
		if x {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprint(v)
}
