package kserve

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
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

// Defaults for the options a Config leaves at zero.
const (
	DefaultDatatype        = "FP64"
	DefaultRetryBackoff    = 50 * time.Millisecond
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 10 * time.Second
)

// Config describes one model behind an Open Inference Protocol server.
type Config struct {
	// Name is the model's name in the workflow (for errors and logs).
	Name string
	// URL is the server: http(s)://host:port[/prefix] for REST;
	// host:port, grpc://host:port or grpcs://host:port (TLS) for gRPC.
	URL      string
	Protocol string // rest (default) or grpc
	// Model and Version name the model on the server; an empty Version lets
	// the server choose.
	Model   string
	Version string
	Inputs  []Input
	Outputs []Output
	// Carry lists input fields copied unchanged into every output record
	// (ids, labels), before the mapped outputs are set.
	Carry []string
	// Binary sends tensor data as raw little-endian bytes where the
	// protocol allows it (gRPC raw_input_contents); otherwise typed/JSON.
	Binary bool

	// MaxConcurrency caps calls in flight to this model (0: no cap).
	MaxConcurrency int
	// Retries is how many times a call that failed in transport (connection
	// refused or reset, HTTP 502/503/504, gRPC UNAVAILABLE) is repeated,
	// with exponential backoff from RetryBackoff. Answers are never retried.
	Retries      int
	RetryBackoff time.Duration
	// BreakerFailures consecutive failed calls open the circuit for
	// BreakerCooldown: calls then fail at once, so the step's bandit routes
	// around the model; after the cool-down one call tries again.
	// BreakerFailures < 0 disables the breaker.
	BreakerFailures int
	BreakerCooldown time.Duration
	// PriceMS, when set, is the model's cost per call for the bandit, in
	// the same unit as measured latency (milliseconds); otherwise the
	// measured latency is the cost.
	PriceMS *float64

	// Credentials, only from the environment or files, never inline.
	TokenEnv  string // environment variable holding a bearer token
	TokenFile string // file holding a bearer token
	CAFile    string // PEM CA bundle for https/grpcs servers
}

// Input maps record fields to one input tensor: each record becomes one
// row, its fields' values (numbers, or arrays of numbers) concatenated in
// order. The tensor's shape is [records, row length].
type Input struct {
	Tensor   string
	Fields   []string
	Datatype string // FP32, FP64 (default), INT32 or INT64
}

// Output maps one output tensor back to an output record field.
type Output struct {
	Tensor string
	Field  string
	Reduce string // "" (one value per record), max, argmax or row
}

// check validates c and fills defaults.
func (c *Config) check() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Protocol == "" {
		c.Protocol = ProtocolREST
	}
	switch c.Protocol {
	case ProtocolREST:
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("url %q is not a REST server address; write it like http://127.0.0.1:8080", c.URL)
		}
	case ProtocolGRPC:
		if _, _, err := grpcTarget(c.URL); err != nil {
			bad("%v", err)
		}
	default:
		bad("protocol %q is not known; use rest or grpc", c.Protocol)
	}
	if c.Model == "" {
		bad("model is missing: name the model as the server knows it")
	}
	if len(c.Inputs) == 0 {
		bad("inputs is empty: map at least one record field to a tensor, e.g. {tensor: input-0, fields: [pixels]}")
	}
	for i := range c.Inputs {
		in := &c.Inputs[i]
		if in.Tensor == "" {
			bad("inputs[%d] has no tensor name", i)
		}
		if len(in.Fields) == 0 {
			bad("inputs[%d] (tensor %q) lists no fields", i, in.Tensor)
		}
		if in.Datatype == "" {
			in.Datatype = DefaultDatatype
		}
		in.Datatype = strings.ToUpper(in.Datatype)
		if !slices.Contains(InputDatatypes, in.Datatype) {
			bad("inputs[%d] datatype %q is not supported; use one of %s", i, in.Datatype, strings.Join(InputDatatypes, ", "))
		}
	}
	if len(c.Outputs) == 0 {
		bad("outputs is empty: map at least one output tensor to a field, e.g. {tensor: predict, field: predicted}")
	}
	for i, o := range c.Outputs {
		if o.Tensor == "" || o.Field == "" {
			bad("outputs[%d] needs both tensor and field", i)
		}
		if o.Reduce != ReduceNone && !slices.Contains(Reductions, o.Reduce) {
			bad("outputs[%d] reduce %q is not known; use max, argmax or row, or leave it out for one value per record", i, o.Reduce)
		}
	}
	if c.MaxConcurrency < 0 {
		bad("max_concurrency must not be negative")
	}
	if c.Retries < 0 {
		bad("retries must not be negative")
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	if c.PriceMS != nil && *c.PriceMS < 0 {
		bad("price_ms must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("served model %q: %s", c.Name, strings.Join(problems, "; "))
	}
	return nil
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
		return "", false, fmt.Errorf("url %q is not a gRPC server address; write it like 127.0.0.1:8081, grpc://host:8081 or grpcs://host:443", raw)
	}
	if s == "" || !strings.Contains(s, ":") || strings.Contains(s, "/") {
		return "", false, fmt.Errorf("url %q is not a gRPC server address; write it like 127.0.0.1:8081, grpc://host:8081 or grpcs://host:443", raw)
	}
	return s, tls, nil
}
