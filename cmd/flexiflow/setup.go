package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/examples/demo"
	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages"
	"github.com/flexiflow/flexiflow/stages/workflow"
	"github.com/flexiflow/flexiflow/stream"
)

// loaded is a workflow compiled against the built-in models, with the Kafka
// cluster it will run on.
type loaded struct {
	wf      *workflow.Workflow
	steps   []*stages.Step
	schemas *schemas.Registry
	builtin *builtins
	kafka   stream.Config
	close   func()
}

// compile reads and compiles the workflow at path ("" means the demo's)
// against the binary's model kinds; log receives the models' events.
// edits, when given, change the parsed workflow before it compiles (run
// --policy).
func compile(path string, log *zap.Logger, edits ...func(*workflow.Workflow) error) (*loaded, error) {
	var wf *workflow.Workflow
	var err error
	if path == "" {
		wf, err = demo.Workflow()
	} else {
		wf, err = workflow.Load(path)
	}
	if err != nil {
		return nil, err
	}
	for _, edit := range edits {
		if err := edit(wf); err != nil {
			return nil, err
		}
	}
	return compileWorkflow(wf, log)
}

// compileWorkflow compiles a parsed workflow against the binary's kinds.
func compileWorkflow(wf *workflow.Workflow, log *zap.Logger) (*loaded, error) {
	b, err := newBuiltins()
	if err != nil {
		return nil, err
	}
	steps, err := stages.Compile(wf, stages.Deps{Models: b.kinds, Schemas: b.schemas, Log: log})
	if err != nil {
		return nil, err
	}
	return &loaded{wf: wf, steps: steps, schemas: b.schemas, builtin: b, close: func() {}}, nil
}

// connect checks that brokers answer (over TLS and SASL when the Kafka
// security flags say so), or starts the embedded broker when brokers is
// empty and embedded is allowed.
func (l *loaded) connect(ctx context.Context, g *globals, brokers string, embedded bool, log *zap.Logger) error {
	kafka, err := g.kafkaConfig(brokers, log)
	if err != nil {
		return err
	}
	l.kafka = kafka
	if len(l.kafka.Brokers) == 0 {
		if !embedded {
			return fmt.Errorf("--brokers is required: give the Kafka cluster's host:port[,host:port]")
		}
		b, err := stream.StartEmbedded("127.0.0.1:0", l.wf.Partitions)
		if err != nil {
			return err
		}
		l.kafka.Brokers, l.close = b.Addrs(), b.Close
		log.Info("started the embedded broker", zap.Strings("addrs", b.Addrs()))
		return nil
	}
	return stream.Ping(ctx, l.kafka)
}

// load compiles the workflow and connects.
func load(ctx context.Context, g *globals, path, brokers string, embedded bool, log *zap.Logger, edits ...func(*workflow.Workflow) error) (*loaded, error) {
	l, err := compile(path, log, edits...)
	if err != nil {
		return nil, err
	}
	if err := l.connect(ctx, g, brokers, embedded, log); err != nil {
		return nil, err
	}
	return l, nil
}
