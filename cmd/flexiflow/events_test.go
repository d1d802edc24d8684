package main

import (
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/schemas"
)

// TestEventLinesPositions: line numbers count the blank lines before the
// first event, and a CSV row that does not parse is an error with its
// line, not a panic.
func TestEventLinesPositions(t *testing.T) {
	lines, err := eventLines(strings.NewReader("\n\n{\"id\": \"a\"}\n{\"id\": \"b\"}\n"), "f.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].line != 3 || lines[1].line != 4 {
		t.Errorf("lines %+v, want the events on lines 3 and 4", lines)
	}
	rows, err := eventLines(strings.NewReader("\nid,amount\no1,2\no2,3\n"), "f.csv", map[string]string{"amount": schemas.KindNumber})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].line != 3 {
		t.Errorf("rows %+v, want the first on line 3", rows)
	}
	_, err = eventLines(strings.NewReader("id,amount\no1,2\n\"o2,3\n"), "f.csv", nil)
	if err == nil || !strings.Contains(err.Error(), "f.csv:3:") {
		t.Errorf("an unterminated quote on line 3: %v", err)
	}
}

func TestEventKey(t *testing.T) {
	for text, want := range map[string]string{
		`{"id": "o-1"}`: "o-1", `{"id": 1234567}`: "1234567", `{"id": 12.50}`: "12.50", `{"id": true}`: "true",
	} {
		if got, ok := eventKey(text, "id"); !ok || string(got) != want {
			t.Errorf("key of %s: %q, %v; want %q", text, got, ok, want)
		}
	}
	if _, ok := eventKey(`{"other": 1}`, "id"); ok {
		t.Error("a missing field gave a key")
	}
}
