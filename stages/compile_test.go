package stages_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// TestCompileErrors checks that mistakes only compiling can find (CEL,
// model names, schemas, policy parameters) point at the workflow's lines.
func TestCompileErrors(t *testing.T) {
	base := oneStep("good", 1) // line 11 is the assertion's expr, line 15 the first model
	cases := []struct {
		name, from, to, want string
	}{
		{"CEL syntax", "output.score >= 0.5", "output.score >=", "wf.yaml:11: step \"score\": assertion \"high\" does not compile"},
		{"CEL type", "output.score >= 0.5", "size(output) + 1", "wf.yaml:11: step \"score\": assertion \"high\" does not compile"},
		{"unknown builtin", "{name: good,", "{name: gone,", "wf.yaml:15: step \"score\" model \"gone\": no model kind \"gone\"; known kinds: bad, boom, flaky"},
		{"unknown kind", "{name: good,", "{name: good, kind: tensorflow,", "wf.yaml:15: step \"score\" model \"good\": no model kind \"tensorflow\"; known kinds: bad, boom"},
		{"unknown schema", "output_schema: flexiflow.test.Scored", "output_schema: flexiflow.test.Nope", "wf.yaml:7: step \"score\": unknown record schema \"flexiflow.test.Nope\""},
		{"missing schema file", "scored.avsc]", "missing.avsc]", "wf.yaml:3: open"},
		{"misspelt output field", "output.score >= 0.5", "output.scroe >= 0.5",
			"wf.yaml:11: step \"score\": assertion \"high\" does not compile: output.scroe: output records (flexiflow.test.Scored) have no field \"scroe\" (did you mean output.score?); fields: id, score, x"},
		{"misspelt input field", "output.score >= 0.5", "input.xx > 0.0 && output.score >= 0.5", "input.xx: input records (flexiflow.test.Item) have no field \"xx\""},
		{"string field compared with a number", "output.score >= 0.5", "output.id == 5", "output.id is a string in flexiflow.test.Scored, compared with the number 5"},
		{"number field compared with a string", "output.score >= 0.5", "output.score != \"high\"", "output.score is a number in flexiflow.test.Scored, compared with the string high"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(t, strings.Replace(base, c.from, c.to, 1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	t.Run("policy parameter", func(t *testing.T) {
		// Refused when the file is loaded, before any connection.
		_, err := load(t, strings.Replace(base, "    models:\n", "    policy: {name: thompson, params: {discount: 2}}\n    models:\n", 1))
		if err == nil || !strings.Contains(err.Error(), "wf.yaml:14: step \"score\": thompson: discount must be (0, 1], got 2") {
			t.Errorf("got %v", err)
		}
	})
}

// writeWorkflow writes yaml as wf.yaml beside the test schemas.
func writeWorkflow(t *testing.T, yaml string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []string{"item.avsc", "scored.avsc"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path = filepath.Join(dir, "wf.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// loadOK loads yaml and fails the test when it does not load.
func loadOK(t *testing.T, yaml string) (string, *workflow.Workflow) {
	t.Helper()
	dir, path := writeWorkflow(t, yaml)
	wf, err := workflow.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, wf
}

// load writes yaml beside the test schemas and loads it; errors name the
// file by its base name.
func load(t *testing.T, yaml string) (*workflow.Workflow, error) {
	t.Helper()
	dir, path := writeWorkflow(t, yaml)
	wf, err := workflow.Load(path)
	if err != nil {
		return nil, errString(strings.ReplaceAll(err.Error(), dir+"/", ""))
	}
	return wf, nil
}

func compile(t *testing.T, yaml string) ([]*stages.Step, error) {
	t.Helper()
	dir, wf := loadOK(t, yaml)
	reg, _ := schemas.NewRegistry()
	steps, err := stages.Compile(wf, stages.Deps{Models: testModels(), Schemas: reg})
	if err != nil {
		// Errors name the file by its full path; tests compare the base name.
		return nil, errString(strings.ReplaceAll(err.Error(), dir+"/", ""))
	}
	return steps, nil
}

type errString string

func (e errString) Error() string { return string(e) }
