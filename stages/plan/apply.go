package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Apply kinds: what --apply writes.
const (
	ApplyFlags     = "flags"
	ApplyCompose   = "compose"
	ApplyKustomize = "kustomize"
)

// Apply writes c as an operator applies it into dir: the flags of each
// step's `flexiflow stage` (flags), a docker compose override whose
// services are named after the steps (compose), or a kustomize overlay
// patching each step's Deployment flexiflow-<step> (kustomize). It
// returns the files written.
func Apply(kind, dir, workflowFile string, c Config, coresPerConsumer float64) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	header := fmt.Sprintf("# Written by flexiflow plan: %s.\n# The workflow's topics need %d partitions: set `partitions: %d` in the workflow file\n# before its topics are created (Kafka adds partitions to a topic but never removes them).\n",
		c, c.Partitions, c.Partitions)
	files := map[string]string{}
	switch kind {
	case ApplyFlags:
		var b strings.Builder
		b.WriteString(header)
		for _, s := range c.Steps {
			fmt.Fprintf(&b, "# step %s: %d consumer(s); give each its own --instance-id\n", s.Name, s.Consumers)
			fmt.Fprintf(&b, "flexiflow stage --workflow %s --step %s --workers %d --max-poll %d\n", workflowFile, s.Name, s.Workers, s.MaxPoll)
		}
		files["flags.txt"] = b.String()
	case ApplyCompose:
		var b strings.Builder
		b.WriteString(header)
		b.WriteString("# Use it with the compose file that runs each step as a service named after it:\n#   docker compose -f docker-compose.yml -f docker-compose.plan.yml up\nservices:\n")
		for _, s := range c.Steps {
			fmt.Fprintf(&b, "  %s:\n    deploy:\n      replicas: %d\n      resources:\n        limits:\n          cpus: \"%g\"\n    environment:\n      FLEXIFLOW_WORKERS: \"%d\"\n      FLEXIFLOW_MAX_POLL: \"%d\"\n",
				s.Name, s.Consumers, coresPerConsumer, s.Workers, s.MaxPoll)
		}
		files["docker-compose.plan.yml"] = b.String()
	case ApplyKustomize:
		var b strings.Builder
		b.WriteString(header)
		b.WriteString("# An overlay on the base that runs each step as Deployment flexiflow-<step>:\n#   kubectl apply -k DIR   (point resources at your base)\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\npatches:\n")
		for _, s := range c.Steps {
			fmt.Fprintf(&b, `  - target:
      kind: Deployment
      name: flexiflow-%s
    patch: |-
      - op: replace
        path: /spec/replicas
        value: %d
      - op: add
        path: /spec/template/spec/containers/0/env
        value:
          - {name: FLEXIFLOW_WORKERS, value: "%d"}
          - {name: FLEXIFLOW_MAX_POLL, value: "%d"}
      - op: add
        path: /spec/template/spec/containers/0/resources/requests/cpu
        value: "%g"
`, s.Name, s.Consumers, s.Workers, s.MaxPoll, coresPerConsumer)
		}
		files["kustomization.yaml"] = b.String()
	default:
		return nil, fmt.Errorf("unknown --apply %q: flags, compose or kustomize", kind)
	}
	var out []string
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
