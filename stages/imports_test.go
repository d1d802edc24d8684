package stages_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the product path free of the demo and keeps imports
// running down the data path (consume → decode → rank → invoke → assert →
// route → trace), never back up it. It reads the real import graph with
// go list -deps, so a new import that breaks a rule fails here.
func TestImports(t *testing.T) {
	const mod = "github.com/flexiflow/flexiflow/"
	rules := []struct {
		pkg    string
		forbid []string // import path prefixes pkg must not depend on
		why    string
	}{
		{"stages", []string{mod + "examples", mod + "bench", mod + "stages/models/digits", mod + "stages/models/kserve", mod + "sinks", mod + "cmd", "gonum.org/v1/plot"},
			"the runtime must not carry the demo, the benchmarks, a particular model kind or a sink"},
		{"stages/workflow", []string{mod + "stages/models/", mod + "stages/assert", mod + "stream", mod + "sinks"},
			"the workflow language is read before anything runs"},
		{"stages/models", []string{mod + "stages/workflow", mod + "stages/assert", mod + "stages/models/", mod + "sinks"},
			"a model kind knows nothing of workflows or assertions"},
		{"stages/models/middleware", []string{mod + "stages/workflow", mod + "stages/assert", mod + "sinks"}, "wrappers wrap any model"},
		{"stages/models/kserve", []string{mod + "stages/workflow", mod + "stages/assert", mod + "sinks", mod + "examples"}, "a kind is one package"},
		{"stages/assert", []string{mod + "stages/workflow", mod + "stages/models/", mod + "sinks"}, "assertions judge records"},
		{"bandit", []string{mod + "stages", mod + "stream", mod + "sinks", "gonum.org/v1/plot"}, "ranking comes before invoking"},
		{"schemas", []string{mod + "stages", mod + "bandit", mod + "sinks"}, "decoding comes before ranking"},
		{"stream", []string{mod + "stages", mod + "bandit", mod + "sinks", mod + "schemas"}, "consuming is the first step"},
		{"sinks/summary", []string{mod + "stages", mod + "examples"}, "a sink reads topics, not the runtime"},
		{"schemas/event", []string{mod + "stages", mod + "bandit", mod + "stream", mod + "sinks"}, "reading an event is decoding"},
		{"stages/relay", []string{mod + "stages/", mod + "schemas", mod + "bandit", mod + "sinks"}, "the relay moves records, whatever they hold"},
		{"stages/edge", []string{mod + "stages/models", mod + "stages/assert", mod + "sinks", mod + "examples"}, "the edges of a workflow run no models"},
		{"cmd/flexiflow", []string{"gonum.org/v1/plot"}, "the served binary does not link the plotting library"},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", mod+r.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 2 {
				t.Fatalf("go list printed %d packages for %s", len(deps), r.pkg)
			}
			for _, d := range deps {
				for _, f := range r.forbid {
					if strings.HasPrefix(d, f) && d != mod+r.pkg {
						t.Errorf("%s depends on %s (%s)", r.pkg, d, r.why)
					}
				}
			}
		})
	}
}
