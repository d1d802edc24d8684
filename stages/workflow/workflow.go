package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/bandit"
)

// Defaults applied to fields a workflow file leaves out.
const (
	DefaultPartitions      = 3
	DefaultTimeout         = 5 * time.Second
	DefaultMinPassFraction = 1.0
	DefaultPolicy          = "flexiflow"
	DefaultRetries         = 2
	DefaultRetryBackoff    = 50 * time.Millisecond
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 10 * time.Second
)

// KindBuiltin is the default model kind: the entry names its real kind
// with builtin (or its name) and gives that kind's settings under
// options. Every other kind is whatever the compiling program registered
// (see models.Registry).
const KindBuiltin = "builtin"

// Workflow is a parsed, defaulted and checked workflow file.
type Workflow struct {
	Name        string   `yaml:"workflow" required:"true" doc:"The workflow's name: letters, digits, '_' or '-'. It prefixes every topic and consumer group."`
	Description string   `yaml:"description" doc:"Free text for people."`
	InputSchema string   `yaml:"input_schema" required:"true" doc:"The full Avro name of the first step's input record, e.g. shop.Order."`
	Schemas     []string `yaml:"schemas" doc:"Extra .avsc files, relative to the workflow file, holding the records the steps read and write."`
	Partitions  int      `yaml:"partitions" default:"3" doc:"Partitions of the topics FlexiFlow creates; at most this many consumers per step share the work."`
	Topics      Topics   `yaml:"topics" doc:"Names of the workflow-wide topics."`
	Steps       []*Step  `yaml:"steps" required:"true" doc:"The steps, in order: each step's output is the next one's input."`
	Source      *Source  `yaml:"source" doc:"Read your own topic of single events, validate them against input_schema and batch them for the first step (flexiflow ingest)."`
	Sink        *Sink    `yaml:"sink" doc:"Write one record per event to your own topic, keyed and with headers as the event came (flexiflow egress)."`

	// File is where the workflow was read from ("<embedded>" for the demo).
	File string `yaml:"-"`
	root *yaml.Node
}

// Event formats a source reads and a sink writes.
const (
	FormatJSON          = "json"
	FormatAvro          = "avro"
	FormatConfluentAvro = "confluent-avro"
)

// Source reads single events from a topic of the user's and batches them
// for the first step.
type Source struct {
	Topic  string      `yaml:"topic" required:"true" doc:"The topic of events to read."`
	Format string      `yaml:"format" default:"json" doc:"json (one JSON object per record), avro (the Avro binary encoding of input_schema, no framing) or confluent-avro (Confluent's framing: a zero byte and the writer schema's registry id, then the Avro body; the writer schema is fetched from --schema-registry and resolved against input_schema, so a field added with a default or removed still reads)."`
	Strict bool        `yaml:"strict" default:"false" doc:"Refuse events with fields input_schema does not have (else they are dropped)."`
	Batch  SourceBatch `yaml:"batch" doc:"How events are grouped into the first step's batches, per source partition and in order."`
	DLQ    string      `yaml:"dlq" default:"<workflow>.source.dlq" doc:"Events that cannot be read, with the reason in the flexiflow-error header and the original bytes, key and headers."`
	Group  string      `yaml:"-"` // consumer group: <workflow>.source
}

// SourceBatch bounds the batches a source makes.
type SourceBatch struct {
	MaxRecords int      `yaml:"max_records" default:"32" doc:"At most this many events per batch."`
	MaxBytes   int      `yaml:"max_bytes" default:"524288" doc:"At most about this many bytes of events (values, keys, headers) per batch; below the first step's input topic's max.message.bytes (1 MB by default). A larger event is dead-lettered with the reason."`
	Linger     Duration `yaml:"linger" default:"100ms" doc:"How long a batch may wait for more events before it goes."`
}

// Sink writes one record per delivered event to a topic of the user's.
type Sink struct {
	Topic        string `yaml:"topic" required:"true" doc:"The topic results go to, one record per event."`
	Format       string `yaml:"format" default:"json" doc:"json, avro (the Avro binary encoding of the last step's output schema, no framing) or confluent-avro (the schema registered under <topic>-value in --schema-registry, records in Confluent's framing)."`
	IncludeInput bool   `yaml:"include_input" default:"false" doc:"Write each event's input and output together: {\"input\": the record the first step read, \"output\": the last step's record} (in Avro, a record flexiflow.sink.Result of the two)."`
	Group        string `yaml:"-"` // consumer group: <workflow>.sink
}

// Topics names a workflow's workflow-wide topics.
type Topics struct {
	Out    string `yaml:"out" default:"<workflow>.out" doc:"Where batches that passed the last step go."`
	Traces string `yaml:"traces" default:"<workflow>.traces" doc:"One trace record per attempt of every step."`
	State  string `yaml:"state" default:"<workflow>.state" doc:"Compacted: each step's learned policy state, so a restart resumes what it learned."`
}

// Step is one stage of the workflow.
type Step struct {
	Name         string     `yaml:"name" required:"true" doc:"The step's name: letters, digits, '_' or '-', unique in the workflow."`
	Description  string     `yaml:"description" doc:"Free text for people."`
	OutputSchema string     `yaml:"output_schema" required:"true" doc:"The full Avro name of the record the step's models produce."`
	Models       []*Model   `yaml:"models" required:"true" doc:"The step's alternative models; the policy decides which is tried first for each batch, and a failed batch goes to the next."`
	Policy       Policy     `yaml:"policy" doc:"The bandit that ranks the models (see Policies below)."`
	Assertions   Assertions `yaml:"assertions" doc:"What a good answer looks like: a batch that fails them is retried on the next-ranked model."`
	Topics       StepTopics `yaml:"topics" doc:"Overrides of the step's topic names."`
	InputSchema  string     `yaml:"-"` // the workflow's input, or the previous step's output
	Output       string     `yaml:"-"` // the next step's In, or the workflow's Out
	Index        int        `yaml:"-"`
	Group        string     `yaml:"-"` // consumer group: <workflow>.<step>
}

// StepTopics overrides a step's topic names.
type StepTopics struct {
	In    string `yaml:"in" default:"<workflow>.<step>.in" doc:"The batches the step reads."`
	Retry string `yaml:"retry" default:"<workflow>.<step>.retry" doc:"Batches a model failed, for the next-ranked model."`
	DLQ   string `yaml:"dlq" default:"<workflow>.<step>.dlq" doc:"Batches no model passed, and records that cannot be read, with the reason in headers."`
	// Feedback carries, for a step with later steps, what happened to the
	// batches it passed on once they ended (delivered or dead-lettered
	// downstream): the step's consumers read it with their input and learn
	// what each model's output costs later.
	Feedback string `yaml:"feedback" default:"<workflow>.<step>.feedback" doc:"Reports of how the batches this step passed on ended downstream (what later steps spent, whether delivered), which its policy learns from; steps other than the last only."`
}

// Model is one alternative model of a step. The keys below are the ones
// every model takes, whatever its kind; the rest of the entry (for kind
// builtin, its options mapping) is the kind's own config, kept in Config
// and checked against the kind's schema when the workflow is compiled.
type Model struct {
	Name string `yaml:"name" required:"true" doc:"The model's name in traces, headers and the bandit: letters, digits, '_' or '-', unique in the step."`
	Kind string `yaml:"kind" doc:"Which kind of model this is (see Model kinds below). builtin means: the kind named by builtin, or by name, with its settings under options." default:"builtin"`
	// Builtin, for kind builtin, names the kind the entry really is.
	Builtin string         `yaml:"builtin" doc:"For kind builtin: the kind to build, e.g. digits.knn. Defaults to name."`
	Options map[string]any `yaml:"options" doc:"For kind builtin: the kind's settings. Other kinds take their settings on the entry itself."`
	Timeout Duration       `yaml:"timeout" doc:"How long one call may take; a model that ignores it is abandoned." default:"5s"`
	// PriceMS, when set, is the model's cost per call for the bandit (in
	// the unit of measured latency, ms) instead of its measured latency.
	PriceMS        *float64 `yaml:"price_ms" doc:"A fixed cost per call for the bandit, in milliseconds' units, instead of the measured latency."`
	MaxConcurrency int      `yaml:"max_concurrency" doc:"At most this many calls in flight to the model per stage; 0 means no cap." default:"0"`
	Retries        *int     `yaml:"retries" doc:"How many times a call that failed in transport (an error the kind marks retryable) is repeated." default:"2"`
	RetryBackoff   Duration `yaml:"retry_backoff" doc:"The first wait between retries, doubling (jittered), at most 2s." default:"50ms"`
	Breaker        *Breaker `yaml:"breaker" doc:"The circuit breaker: after failures consecutive failed calls, calls fail at once for cooldown."`

	// Config is the rest of the entry: the keys its kind takes. For kind
	// builtin it is the options mapping. Never nil after Parse.
	Config *yaml.Node `yaml:"-"`
	// Line is where the entry starts in the workflow file.
	Line int `yaml:"-"`
}

// commonModelKeys are the keys Model decodes itself; every other key of
// a model entry belongs to its kind.
var commonModelKeys = yamlKeys(reflect.TypeFor[Model]())

// UnmarshalYAML splits a model entry into the keys every model takes and
// the kind's own, which stay a YAML node (with their lines) for the
// kind's schema to check.
func (m *Model) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a model must be a mapping with at least a name, like {name: mlp, kind: kserve-v2, ...}", n.Line)
	}
	common := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		into := rest
		if slices.Contains(commonModelKeys, n.Content[i].Value) {
			into = common
		}
		into.Content = append(into.Content, n.Content[i], n.Content[i+1])
	}
	type plain Model
	if err := common.Decode((*plain)(m)); err != nil {
		return err
	}
	m.Config, m.Line = rest, n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "options" && n.Content[i+1].Kind == yaml.MappingNode {
			// Kind builtin: the options are the kind's settings.
			rest.Content = append(slices.Clone(n.Content[i+1].Content), rest.Content...)
		}
	}
	return nil
}

// KindName is the kind the model is built as: for kind builtin, the kind
// its builtin key names (by default its name).
func (m *Model) KindName() string {
	if m.Kind == KindBuiltin || m.Kind == "" {
		if m.Builtin != "" {
			return m.Builtin
		}
		return m.Name
	}
	return m.Kind
}

// Breaker tunes a model's circuit breaker.
type Breaker struct {
	Failures int      `yaml:"failures" doc:"Consecutive failed calls that open the circuit; -1 disables the breaker." default:"5"`
	Cooldown Duration `yaml:"cooldown" doc:"How long the circuit stays open before one call probes the model again." default:"10s"`
}

// Policy selects and tunes a step's bandit.
type Policy struct {
	Name   string             `yaml:"name" default:"flexiflow" doc:"Which policy."`
	Seed   uint64             `yaml:"seed" default:"<step number>" doc:"Seed of the policy's random choices, for reproducible runs."`
	Params map[string]float64 `yaml:"params" doc:"The policy's parameters, checked against its ranges at load."`
	// Context "upstream" keeps one policy per model that served the step
	// before, for a step whose models fare differently after each.
	Context string `yaml:"context" doc:"upstream: learn a separate ranking for each model that served the previous step (for a step whose models' success depends on which upstream model prepared the batch); empty: one ranking. Not on the first step."`
}

// PolicyContextUpstream is Policy.Context for one policy per upstream model.
const PolicyContextUpstream = "upstream"

// Assertions judge a model's answer for one batch.
type Assertions struct {
	// Records are CEL predicates over `input` and `output`, one record pair at
	// a time; a record passes when every predicate holds.
	Records []Assertion `yaml:"records" doc:"CEL predicates over input and output, one record pair at a time; a record passes when every one holds."`
	Batch   BatchRule   `yaml:"batch" doc:"How the records' verdicts make the batch's."`
}

// Assertion is one named CEL predicate.
type Assertion struct {
	Name string `yaml:"name" default:"assertion<n>" doc:"Named in traces when the assertion fails."`
	Expr string `yaml:"expr" required:"true" doc:"A CEL predicate, type-checked at load against the step's input and output schemas."`
}

// BatchRule decides a batch's verdict from its records' verdicts.
type BatchRule struct {
	// MinPassFraction is the least fraction of records that must pass.
	MinPassFraction *float64 `yaml:"min_pass_fraction" default:"1.0" doc:"The least fraction of records that must pass."`
	// Expr is an optional CEL predicate over `batch` aggregates.
	Expr string `yaml:"expr" doc:"An optional CEL predicate over batch aggregates (batch.size, batch.passed, batch.pass_fraction)."`
}

// Duration is a time.Duration written as "500ms", "2s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration; write it like 500ms, 2s or 1m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// AllTopics lists every topic the workflow's steps use, in a stable order,
// except the compacted state topic (Topics.State), which needs its own
// settings, and the source's and sink's (EdgeTopics), which only ingest and
// egress need.
func (w *Workflow) AllTopics() []string {
	var out []string
	for _, s := range w.Steps {
		out = append(out, s.Topics.In, s.Topics.Retry, s.Topics.DLQ)
		if s.Topics.Feedback != "" {
			out = append(out, s.Topics.Feedback)
		}
	}
	return append(out, w.Topics.Out, w.Topics.Traces)
}

// EdgeTopics lists the source's topics (its events, its dead letters) and
// the sink's, where the workflow has them: the user's own topics.
func (w *Workflow) EdgeTopics() []string {
	var out []string
	if w.Source != nil {
		out = append(out, w.Source.Topic, w.Source.DLQ)
	}
	if w.Sink != nil {
		out = append(out, w.Sink.Topic)
	}
	return out
}

// Step returns the step called name.
func (w *Workflow) Step(name string) (*Step, error) {
	var names []string
	for _, s := range w.Steps {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("workflow %q has no step %q; its steps are: %s", w.Name, name, strings.Join(names, ", "))
}

// Load reads, defaults and checks the workflow file at path.
func Load(path string) (*Workflow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading workflow: %w", err)
	}
	w, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for i, s := range w.Schemas {
		if !filepath.IsAbs(s) {
			w.Schemas[i] = filepath.Join(dir, s)
		}
	}
	return w, nil
}

// Parse parses workflow YAML; file names the source in error messages.
func Parse(file string, data []byte) (*Workflow, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", file, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty; start it with `workflow: <name>` and a `steps:` list", file)
	}
	w := &Workflow{File: file, root: &root}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(w); err != nil {
		return nil, decodeError(file, err)
	}
	if err := w.defaultAndCheck(); err != nil {
		return nil, err
	}
	return w, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (w *Workflow) defaultAndCheck() error {
	var errs []error
	bad := func(path []any, format string, args ...any) { errs = append(errs, w.Errorf(path, format, args...)) }

	if !nameRE.MatchString(w.Name) {
		bad([]any{"workflow"}, "workflow name %q must be letters, digits, '_' or '-' (it prefixes topic and group names)", w.Name)
	}
	if w.InputSchema == "" {
		bad([]any{"input_schema"}, "input_schema is missing: name the Avro record schema of the first step's input, e.g. flexiflow.demo.DigitImage")
	}
	if w.Partitions == 0 {
		w.Partitions = DefaultPartitions
	} else if w.Partitions < 0 {
		bad([]any{"partitions"}, "partitions must be positive, got %d", w.Partitions)
	}
	if w.Topics.Out == "" {
		w.Topics.Out = w.Name + ".out"
	}
	if w.Topics.Traces == "" {
		w.Topics.Traces = w.Name + ".traces"
	}
	if w.Topics.State == "" {
		w.Topics.State = w.Name + ".state"
	}
	if len(w.Steps) == 0 {
		bad([]any{"steps"}, "the workflow has no steps; add a `steps:` list with at least one step")
	}
	for i, s := range w.Steps {
		if s == nil {
			bad([]any{"steps", i}, "step %d is empty; give it a name, an output_schema and models", i+1)
			return errors.Join(errs...)
		}
		for j, m := range s.Models {
			if m == nil {
				bad([]any{"steps", i, "models", j}, "model %d of step %q is empty; give it at least a name", j+1, s.Name)
				return errors.Join(errs...)
			}
		}
	}
	seen := map[string]bool{}
	for i, s := range w.Steps {
		path := []any{"steps", i}
		if !nameRE.MatchString(s.Name) {
			bad(append(path, "name"), "step name %q must be letters, digits, '_' or '-'", s.Name)
		}
		if seen[s.Name] {
			bad(append(path, "name"), "step name %q is used twice; step names must be unique", s.Name)
		}
		seen[s.Name] = true
		s.Index = i
		s.Group = w.Name + "." + s.Name
		if s.OutputSchema == "" {
			bad(path, "step %q has no output_schema: name the Avro record schema its models produce", s.Name)
		}
		if s.Topics.In == "" {
			s.Topics.In = w.Name + "." + s.Name + ".in"
		}
		if s.Topics.Retry == "" {
			s.Topics.Retry = w.Name + "." + s.Name + ".retry"
		}
		if s.Topics.DLQ == "" {
			s.Topics.DLQ = w.Name + "." + s.Name + ".dlq"
		}
		if i+1 < len(w.Steps) && s.Topics.Feedback == "" {
			s.Topics.Feedback = w.Name + "." + s.Name + ".feedback"
		}
		if i+1 == len(w.Steps) && s.Topics.Feedback != "" {
			bad(append(slices.Clone(path), "topics", "feedback"), "step %q is the last step: nothing downstream reports back to it, so it has no feedback topic; remove the key", s.Name)
		}
		if s.Policy.Name == "" {
			s.Policy.Name = DefaultPolicy
		}
		if s.Policy.Seed == 0 {
			s.Policy.Seed = uint64(i + 1)
		}
		switch s.Policy.Context {
		case "":
		case PolicyContextUpstream:
			if i == 0 {
				bad(append(slices.Clone(path), "policy", "context"), "step %q is the first step: no model serves a step before it, so context: upstream has nothing to tell batches apart by; remove it", s.Name)
			}
		default:
			bad(append(slices.Clone(path), "policy", "context"), "step %q: policy context %q is not known; use upstream, or leave it out", s.Name, s.Policy.Context)
		}
		if err := bandit.Check(s.Policy.Name, s.Policy.Params); err != nil {
			at := append(slices.Clone(path), "policy", "name")
			if pe := (*bandit.ParamError)(nil); errors.As(err, &pe) && pe.Param != "" {
				at = append(slices.Clone(path), "policy", "params", pe.Param)
			}
			bad(at, "step %q: %v", s.Name, err)
		}
		w.checkModels(s, path, bad)
		w.checkAssertions(s, path, bad)
	}
	w.checkSourceSink(bad)
	w.checkTopics(bad)
	for i, s := range w.Steps {
		if i == 0 {
			s.InputSchema = w.InputSchema
		} else {
			s.InputSchema = w.Steps[i-1].OutputSchema
		}
		if i+1 < len(w.Steps) {
			s.Output = w.Steps[i+1].Topics.In
		} else {
			s.Output = w.Topics.Out
		}
	}
	return errors.Join(errs...)
}

// checkSourceSink fills the source's and sink's defaults and checks them.
func (w *Workflow) checkSourceSink(bad func([]any, string, ...any)) {
	format := func(path []any, f *string, role string) {
		switch *f {
		case "":
			*f = FormatJSON
		case FormatJSON, FormatAvro, FormatConfluentAvro:
		default:
			bad(path, "%s format %q is not known; use json, avro or confluent-avro", role, *f)
		}
	}
	if src := w.Source; src != nil {
		if src.Topic == "" {
			bad([]any{"source"}, "source.topic is missing: name the topic of events to read")
		}
		format([]any{"source", "format"}, &src.Format, "source")
		if src.DLQ == "" {
			src.DLQ = w.Name + ".source.dlq"
		}
		src.Group = w.Name + ".source"
		b := &src.Batch
		if b.MaxRecords == 0 {
			b.MaxRecords = 32
		} else if b.MaxRecords < 0 {
			bad([]any{"source", "batch", "max_records"}, "source.batch.max_records must be positive, got %d", b.MaxRecords)
		}
		if b.MaxBytes == 0 {
			b.MaxBytes = 512 << 10
		} else if b.MaxBytes < 0 {
			bad([]any{"source", "batch", "max_bytes"}, "source.batch.max_bytes must be positive, got %d", b.MaxBytes)
		}
		if b.Linger == 0 {
			b.Linger = Duration(100 * time.Millisecond)
		} else if b.Linger < 0 {
			bad([]any{"source", "batch", "linger"}, "source.batch.linger must be positive")
		}
	}
	if sk := w.Sink; sk != nil {
		if sk.Topic == "" {
			bad([]any{"sink"}, "sink.topic is missing: name the topic results go to")
		}
		format([]any{"sink", "format"}, &sk.Format, "sink")
		sk.Group = w.Name + ".sink"
	}
}

// roleTopic is a topic and the role it plays, for checkTopics.
type roleTopic struct {
	path  []any
	role  string
	topic string
}

// checkTopics refuses topics shared by roles that cannot share them: a
// topic a step consumes (its in or retry topic) belongs to that step alone,
// or two consumer groups would process its batches, and it is never a dead
// letter, output, trace or state topic.
func (w *Workflow) checkTopics(bad func([]any, string, ...any)) {
	owner := map[string]string{}
	for i, s := range w.Steps {
		for _, t := range []struct{ key, topic string }{{"in", s.Topics.In}, {"retry", s.Topics.Retry}, {"feedback", s.Topics.Feedback}} {
			if t.topic == "" {
				continue
			}
			role := fmt.Sprintf("step %q's %s topic", s.Name, t.key)
			if prev, ok := owner[t.topic]; ok {
				bad([]any{"steps", i, "topics", t.key}, "topic %q is both %s and %s; every step reads its own in and retry topics (rename one under `topics:`)", t.topic, prev, role)
				continue
			}
			owner[t.topic] = role
		}
	}
	others := []roleTopic{{[]any{"topics", "out"}, "the workflow's out topic", w.Topics.Out}, {[]any{"topics", "traces"}, "the traces topic", w.Topics.Traces}, {[]any{"topics", "state"}, "the state topic", w.Topics.State}}
	for i, s := range w.Steps {
		others = append(others, roleTopic{[]any{"steps", i, "topics", "dlq"}, fmt.Sprintf("step %q's dlq topic", s.Name), s.Topics.DLQ})
	}
	if w.Source != nil {
		others = append(others, roleTopic{[]any{"source", "topic"}, "the source topic", w.Source.Topic}, roleTopic{[]any{"source", "dlq"}, "the source's dlq topic", w.Source.DLQ})
	}
	if w.Sink != nil {
		others = append(others, roleTopic{[]any{"sink", "topic"}, "the sink topic", w.Sink.Topic})
	}
	for _, o := range others {
		if prev, ok := owner[o.topic]; ok {
			bad(o.path, "topic %q is both %s and %s; a topic a step reads cannot also be written as another role (rename one under `topics:`)", o.topic, prev, o.role)
		}
	}
	if w.Topics.Traces == w.Topics.State || w.Topics.Out == w.Topics.Traces || w.Topics.Out == w.Topics.State {
		bad([]any{"topics"}, "topics out (%q), traces (%q) and state (%q) must be three different topics", w.Topics.Out, w.Topics.Traces, w.Topics.State)
	}
}

func (w *Workflow) checkModels(s *Step, path []any, bad func([]any, string, ...any)) {
	if len(s.Models) == 0 {
		bad(path, "step %q has no models; list at least one under `models:`", s.Name)
	}
	names := map[string]bool{}
	for j, m := range s.Models {
		mp := append(append([]any{}, path...), "models", j)
		if !nameRE.MatchString(m.Name) {
			bad(append(mp, "name"), "model name %q must be letters, digits, '_' or '-' (it appears in headers as a comma-separated list)", m.Name)
		}
		if names[m.Name] {
			bad(append(mp, "name"), "model name %q is used twice in step %q", m.Name, s.Name)
		}
		names[m.Name] = true
		if m.Kind == "" {
			m.Kind = KindBuiltin
		}
		if m.Kind == KindBuiltin && m.Builtin == "" {
			m.Builtin = m.Name
		}
		if m.Kind != KindBuiltin && (m.Builtin != "" || m.Options != nil) {
			key := "builtin"
			if m.Builtin == "" {
				key = "options"
			}
			bad(append(mp, key), "model %q: builtin and options are for kind builtin; a %s model takes its settings on the entry itself", m.Name, m.Kind)
		}
		w.checkWrappers(m, mp, bad)
		if m.PriceMS != nil && *m.PriceMS < 0 {
			bad(append(mp, "price_ms"), "price_ms must not be negative, got %g", *m.PriceMS)
		}
		if m.Timeout == 0 {
			m.Timeout = Duration(DefaultTimeout)
		} else if m.Timeout < 0 {
			bad(append(mp, "timeout"), "timeout must be positive")
		}
	}
}

// checkWrappers checks the settings every model takes and fills their
// defaults.
func (w *Workflow) checkWrappers(m *Model, mp []any, bad func([]any, string, ...any)) {
	at := func(p ...any) []any { return append(append([]any{}, mp...), p...) }
	if m.MaxConcurrency < 0 {
		bad(at("max_concurrency"), "model %q: max_concurrency must not be negative (0 means no cap)", m.Name)
	}
	if m.Retries == nil {
		r := DefaultRetries
		m.Retries = &r
	} else if *m.Retries < 0 {
		bad(at("retries"), "model %q: retries must not be negative", m.Name)
	}
	if m.RetryBackoff == 0 {
		m.RetryBackoff = Duration(DefaultRetryBackoff)
	} else if m.RetryBackoff < 0 {
		bad(at("retry_backoff"), "model %q: retry_backoff must be positive", m.Name)
	}
	if m.Breaker == nil {
		m.Breaker = &Breaker{}
	}
	if m.Breaker.Failures == 0 {
		m.Breaker.Failures = DefaultBreakerFailures
	} else if m.Breaker.Failures < -1 {
		bad(at("breaker", "failures"), "model %q: breaker failures must be positive, or -1 to disable the breaker", m.Name)
	}
	if m.Breaker.Cooldown == 0 {
		m.Breaker.Cooldown = Duration(DefaultBreakerCooldown)
	} else if m.Breaker.Cooldown < 0 {
		bad(at("breaker", "cooldown"), "model %q: breaker cooldown must be positive", m.Name)
	}
}

func (w *Workflow) checkAssertions(s *Step, path []any, bad func([]any, string, ...any)) {
	ap := append(append([]any{}, path...), "assertions")
	names := map[string]bool{}
	for j, a := range s.Assertions.Records {
		if a.Name == "" {
			a.Name = fmt.Sprintf("assertion%d", j+1)
			s.Assertions.Records[j].Name = a.Name
		}
		if names[a.Name] {
			bad(append(ap, "records", j, "name"), "assertion name %q is used twice in step %q", a.Name, s.Name)
		}
		names[a.Name] = true
		if strings.TrimSpace(a.Expr) == "" {
			bad(append(ap, "records", j), "assertion %q has no expr; write a CEL predicate over input and output, e.g. output.confidence >= 0.6", a.Name)
		}
	}
	if f := s.Assertions.Batch.MinPassFraction; f == nil {
		v := DefaultMinPassFraction
		s.Assertions.Batch.MinPassFraction = &v
	} else if *f < 0 || *f > 1 {
		bad(append(ap, "batch", "min_pass_fraction"), "min_pass_fraction must be between 0 and 1, got %g", *f)
	}
}

// Errorf formats an error that points at the file and line of the YAML node
// at path (keys and list indices from the document root), falling back to
// the nearest enclosing node that exists.
func (w *Workflow) Errorf(path []any, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := w.Line(path...); line > 0 {
		return fmt.Errorf("%s:%d: %s", w.File, line, msg)
	}
	return fmt.Errorf("%s: %s", w.File, msg)
}

// Line returns the line of the YAML node at path, or of its nearest existing
// ancestor; 0 when unknown.
func (w *Workflow) Line(path ...any) int {
	if w.root == nil || len(w.root.Content) == 0 {
		return 0
	}
	return NodeLine(w.root.Content[0], path...)
}

// NodeLine returns the line of the node at path below n (mapping keys and
// list indices), or of its nearest existing ancestor; 0 when n is nil.
func NodeLine(n *yaml.Node, path ...any) int {
	if n == nil {
		return 0
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						line = n.Content[i].Line
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// SetPolicy makes every step rank its models with the named policy (its
// default parameters; a step that already names it keeps its own), so the
// same stream can be run under each policy (demo --policy, run --policy).
func (w *Workflow) SetPolicy(name string) error {
	if err := bandit.Check(name, nil); err != nil {
		return fmt.Errorf("--policy %s: %w", name, err)
	}
	for _, s := range w.Steps {
		if s.Policy.Name != name {
			s.Policy.Name, s.Policy.Params = name, nil
		}
	}
	return nil
}

// SetPolicyParams sets parameters of every step's policy, over the step's
// own (demo --policy-param, run --policy-param), e.g. overhead_ms=0 to rank
// on model time alone. Each value must be a number the step's policy takes.
func (w *Workflow) SetPolicyParams(params map[string]string) error {
	set := bandit.Params{}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v, err := strconv.ParseFloat(strings.TrimSpace(params[k]), 64)
		if err != nil {
			return fmt.Errorf("--policy-param %s=%s: the value is not a number", k, params[k])
		}
		set[k] = v
	}
	// Every step is checked before any is changed, so a refused value
	// leaves the workflow as it was.
	merged := make([]bandit.Params, len(w.Steps))
	for i, s := range w.Steps {
		p := maps.Clone(s.Policy.Params)
		if p == nil {
			p = bandit.Params{}
		}
		maps.Copy(p, set)
		if err := bandit.Check(s.Policy.Name, p); err != nil {
			return fmt.Errorf("--policy-param: step %q (policy %s): %w", s.Name, s.Policy.Name, err)
		}
		merged[i] = p
	}
	for i, s := range w.Steps {
		s.Policy.Params = merged[i]
	}
	return nil
}
