package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stages/edge"
)

func newSchemaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "The Avro schemas of a workflow's topics",
	}
	cmd.AddCommand(newSchemaPrintCmd(g))
	return cmd
}

// topicSchema is one topic and what its records are.
type topicSchema struct {
	Topics []string        `json:"topics"`
	Role   string          `json:"role"`
	Format string          `json:"format"`
	Schema json.RawMessage `json:"schema"`
}

func newSchemaPrintCmd(g *globals) *cobra.Command {
	var wfPath, step string
	cmd := &cobra.Command{
		Use:   "print --workflow FILE [--step S]",
		Short: "Print the schemas a producer or consumer of each of the workflow's topics needs",
		Long: `Print, as one JSON array, what the records of each of the workflow's topics
are: the source topic's events (input_schema, in the source's format), each
step's input, retry and dead-letter topics (FlexiFlow's batch envelope
around the step's input records, Avro single-object encoding), the output
topic (the envelope around the last step's output) and the sink topic's
records. With --step, only that step's topics and the topic it writes.`,
		Example: `  flexiflow schema print --workflow examples/fraud/workflow.yaml
  flexiflow schema print --workflow examples/fraud/workflow.yaml --step score | jq '.[0].schema'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := compile(wfPath, zap.NewNop())
			if err != nil {
				return err
			}
			var out []topicSchema
			add := func(topics []string, role, format, schema string) {
				out = append(out, topicSchema{Topics: topics, Role: role, Format: format, Schema: json.RawMessage(schema)})
			}
			if step != "" {
				if _, err := l.wf.Step(step); err != nil {
					return err
				}
			}
			if src := l.wf.Source; src != nil && step == "" {
				add([]string{src.Topic}, "source events", src.Format, l.steps[0].In.RecordSchema)
			}
			for i, s := range l.steps {
				if step != "" && s.Spec.Name != step {
					continue
				}
				add([]string{s.Spec.Topics.In, s.Spec.Topics.Retry, s.Spec.Topics.DLQ}, fmt.Sprintf("step %s input", s.Spec.Name), "avro single-object", s.In.Schema())
				if i == len(l.steps)-1 || step != "" {
					add([]string{s.Spec.Output}, fmt.Sprintf("step %s output", s.Spec.Name), "avro single-object", s.Out.Schema())
				}
			}
			if sk := l.wf.Sink; sk != nil && step == "" {
				schema, err := edge.SinkSchema(sk, l.steps[0].In.RecordSchema, l.steps[len(l.steps)-1].Out.RecordSchema)
				if err != nil {
					return err
				}
				add([]string{sk.Topic}, "sink records", sk.Format, schema)
			}
			b, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return err
		},
	}
	cmd.Flags().StringVar(&wfPath, "workflow", "", "workflow file (empty: the built-in demo workflow)")
	cmd.Flags().StringVar(&step, "step", "", "only this step's topics")
	return cmd
}
