package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/reference/workflow.md differs
// from what the code declares: a key, kind, default or policy changed and
// the reference was not regenerated.
func TestReferenceIsCurrent(t *testing.T) {
	b, err := newBuiltins()
	if err != nil {
		t.Fatal(err)
	}
	want := reference(b.kinds)
	got, err := os.ReadFile(filepath.Join("..", "..", referencePath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; regenerate it with `make docs` (go run ./cmd/flexiflow reference > %s)", referencePath, referencePath)
	}
	for _, k := range b.kinds.Names() {
		if !strings.Contains(string(want), "### `"+k+"`") {
			t.Errorf("the reference has no section for kind %s", k)
		}
	}
}
