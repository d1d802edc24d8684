// Package noop is the workflow the throughput benchmark and the hot-path
// micro-benchmarks share: one step whose model returns its input and whose
// one assertion is trivial, over batches of flexiflow.bench.Blob records.
// What such a step costs is FlexiFlow's own overhead.
//
// It depends only on the workflow and models packages, so the stages
// package's own benchmarks can use it too.
package noop

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// Model is the builtin name of the identity model.
const Model = "bench.noop"

// Workflow returns the one-step workflow named name with partitions
// partitions per topic.
func Workflow(name string, partitions int) (*workflow.Workflow, error) {
	yaml := fmt.Sprintf(`workflow: %s
input_schema: flexiflow.bench.Blob
partitions: %d
steps:
  - name: noop
    output_schema: flexiflow.bench.Blob
    models: [{name: noop, builtin: %s}]
    assertions:
      records: [{name: has-id, expr: "output.id != ''"}]
`, name, partitions, Model)
	return workflow.Parse("bench-noop.yaml", []byte(yaml))
}

// Models returns a registry holding the identity model.
func Models() *models.Registry {
	reg := models.NewRegistry()
	reg.Register(Model, func(map[string]any) (models.Model, error) {
		return models.Func(func(_ context.Context, in []models.Record) ([]models.Record, error) { return in, nil }), nil
	})
	return reg
}

//go:embed blob.avsc
var blobSchema string

// Schemas returns a schema registry holding the Blob record the no-op
// workflow reads and writes.
func Schemas() (*schemas.Registry, error) {
	reg, err := schemas.NewRegistry()
	if err != nil {
		return nil, err
	}
	if _, err := reg.Add(blobSchema); err != nil {
		return nil, err
	}
	return reg, nil
}

// EdgesWorkflow is Workflow with a source (JSON Blob events on
// <name>.events, batches of up to maxRecords, linger 20ms) and a sink
// (JSON on <name>.results): what the event variants of the throughput
// benchmark run.
func EdgesWorkflow(name string, partitions, maxRecords int) (*workflow.Workflow, error) {
	yaml := fmt.Sprintf(`workflow: %s
input_schema: flexiflow.bench.Blob
partitions: %d
source: {topic: %s.events, format: json, batch: {max_records: %d, linger: 20ms}}
sink: {topic: %s.results, format: json}
steps:
  - name: noop
    output_schema: flexiflow.bench.Blob
    models: [{name: noop, builtin: %s}]
    assertions:
      records: [{name: has-id, expr: "output.id != ''"}]
`, name, partitions, name, maxRecords, name, Model)
	return workflow.Parse("bench-noop-edges.yaml", []byte(yaml))
}
