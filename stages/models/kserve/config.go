package kserve

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Protocols a served model can be reached by.
const (
	ProtocolREST = "rest"
	ProtocolGRPC = "grpc"
)

// Reductions an output mapping can apply to a tensor's row.
const (
	ReduceNone   = ""       // one value per record: shape [N] or [N,1]
	ReduceMax    = "max"    // the row's largest value, e.g. a class probability
	ReduceArgmax = "argmax" // the index of the row's largest value, as an int
	ReduceRow    = "row"    // the whole row, as an array field
)

// Datatypes the adapter sends (it reads every datatype of the protocol),
// and the reductions an Output may name.
var (
	InputDatatypes = []string{"FP32", "FP64", "INT32", "INT64"}
	Reductions     = []string{"max", "argmax", "row"}
)

// DefaultDatatype is an input tensor's datatype when the entry gives none.
const DefaultDatatype = "FP64"

// Config describes one model behind an Open Inference Protocol server: the
// keys a kserve-v2 model entry takes besides those every model takes
// (timeout, retries, breaker, max_concurrency, price_ms).
type Config struct {
	// Name is the model's name in the workflow (for errors and logs).
	Name string `yaml:"-"`
	// URL is the server: http(s)://host:port[/prefix] for REST;
	// host:port, grpc://host:port or grpcs://host:port (TLS) for gRPC.
	URL      string `yaml:"url" required:"true" doc:"The server: http(s)://host:port[/prefix] for rest; host:port, grpc://host:port or grpcs://host:port (TLS) for grpc."`
	Protocol string `yaml:"protocol" default:"rest" doc:"rest or grpc."`
	// Model and Version name the model on the server; an empty Version lets
	// the server choose.
	Model   string   `yaml:"model" required:"true" doc:"The model's name on the server."`
	Version string   `yaml:"version" doc:"The model version to call; empty lets the server choose."`
	Inputs  []Input  `yaml:"inputs" required:"true" doc:"Record fields to input tensors: each record is one row, its fields' values concatenated in order."`
	Outputs []Output `yaml:"outputs" required:"true" doc:"Output tensors back to output record fields."`
	// Carry lists input fields copied unchanged into every output record
	// (ids, labels), before the mapped outputs are set.
	Carry []string `yaml:"carry" doc:"Input fields copied unchanged into every output record (ids, labels)."`
	// Binary sends tensor data as raw little-endian bytes where the
	// protocol allows it (gRPC raw_input_contents); otherwise typed/JSON.
	Binary bool `yaml:"binary" default:"true" doc:"Send raw little-endian tensor bytes where the protocol allows it (gRPC)."`
	// Auth says where credentials are: only the environment or files,
	// never inline.
	Auth Auth `yaml:"auth" doc:"Where the server's credentials are: the environment or files, never the workflow file."`
}

// Auth names where a served model's credentials are.
type Auth struct {
	TokenEnv  string `yaml:"token_env" doc:"Environment variable holding a bearer token."`
	TokenFile string `yaml:"token_file" doc:"File holding a bearer token, read on every call (rotation is picked up)."`
	CAFile    string `yaml:"ca_file" doc:"PEM CA bundle for https and grpcs servers."`
}

// Input maps record fields to one input tensor: each record becomes one
// row, its fields' values (numbers, or arrays of numbers) concatenated in
// order. The tensor's shape is [records, row length].
type Input struct {
	Tensor   string   `yaml:"tensor" doc:"The input tensor's name on the server."`
	Fields   []string `yaml:"fields" doc:"The record fields that make up each row."`
	Datatype string   `yaml:"datatype" default:"FP64" doc:"FP32, FP64, INT32 or INT64."`
}

// Output maps one output tensor back to an output record field.
type Output struct {
	Tensor string `yaml:"tensor" doc:"The output tensor's name on the server."`
	Field  string `yaml:"field" doc:"The output record field it fills."`
	Reduce string `yaml:"reduce" doc:"Empty for one value per record; max, argmax or row to reduce each row."`
}

// Check validates c and fills defaults; each problem is a
// *models.FieldError naming its key.
func (c *Config) Check() error {
	var problems []error
	bad := func(path []any, format string, args ...any) {
		problems = append(problems, models.Problem(path, format, args...))
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolREST
	}
	switch c.Protocol {
	case ProtocolREST:
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad([]any{"url"}, "url %q must be the server's REST address, like http://127.0.0.1:8080", c.URL)
		}
	case ProtocolGRPC:
		if _, _, err := grpcTarget(c.URL); err != nil {
			bad([]any{"url"}, "%v", err)
		}
	default:
		bad([]any{"protocol"}, "protocol %q is not known; use rest or grpc", c.Protocol)
	}
	if c.Model == "" {
		bad([]any{"model"}, "`model:` is missing: name the model as the server knows it")
	}
	if len(c.Inputs) == 0 {
		bad([]any{"inputs"}, "inputs is empty: map at least one record field to a tensor, e.g. inputs: [{tensor: input-0, fields: [pixels]}]")
	}
	for i := range c.Inputs {
		in := &c.Inputs[i]
		if in.Tensor == "" {
			bad([]any{"inputs", i}, "input %d has no tensor name", i)
		}
		if len(in.Fields) == 0 {
			bad([]any{"inputs", i}, "input tensor %q lists no fields", in.Tensor)
		}
		if in.Datatype == "" {
			in.Datatype = DefaultDatatype
		}
		if d := strings.ToUpper(in.Datatype); slices.Contains(InputDatatypes, d) {
			in.Datatype = d
		} else {
			bad([]any{"inputs", i, "datatype"}, "input datatype %q is not supported; use one of %s", in.Datatype, strings.Join(InputDatatypes, ", "))
		}
	}
	if len(c.Outputs) == 0 {
		bad([]any{"outputs"}, "outputs is empty: map at least one output tensor to a field, e.g. outputs: [{tensor: predict, field: predicted}]")
	}
	for i, o := range c.Outputs {
		if o.Tensor == "" || o.Field == "" {
			bad([]any{"outputs", i}, "output %d needs both tensor and field", i)
		}
		if o.Reduce != ReduceNone && !slices.Contains(Reductions, o.Reduce) {
			bad([]any{"outputs", i, "reduce"}, "reduce %q is not known; use max, argmax or row, or leave it out for one value per record", o.Reduce)
		}
	}
	if c.Auth.TokenEnv != "" && c.Auth.TokenFile != "" {
		bad([]any{"auth"}, "give token_env or token_file, not both")
	}
	return errors.Join(problems...)
}

// grpcTarget turns a gRPC url into a dial target and whether to use TLS.
func grpcTarget(raw string) (target string, tls bool, err error) {
	s := raw
	switch {
	case strings.HasPrefix(s, "grpcs://"):
		s, tls = strings.TrimPrefix(s, "grpcs://"), true
	case strings.HasPrefix(s, "grpc://"):
		s = strings.TrimPrefix(s, "grpc://")
	case strings.Contains(s, "://"):
		return "", false, fmt.Errorf("url %q must be the server's gRPC address, like 127.0.0.1:8081, grpc://host:8081 or grpcs://host:443", raw)
	}
	if s == "" || !strings.Contains(s, ":") || strings.Contains(s, "/") {
		return "", false, fmt.Errorf("url %q must be the server's gRPC address, like 127.0.0.1:8081, grpc://host:8081 or grpcs://host:443", raw)
	}
	return s, tls, nil
}
