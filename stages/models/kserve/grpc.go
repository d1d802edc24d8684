package kserve

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/flexiflow/flexiflow/stages/models/kserve/inferencepb"

	"github.com/flexiflow/flexiflow/stages/models"
)

// grpcClient speaks the Open Inference Protocol's gRPC binding
// (inference.GRPCInferenceService/ModelInfer).
type grpcClient struct {
	conn    *grpc.ClientConn
	client  pb.GRPCInferenceServiceClient
	model   string
	version string
	binary  bool
	outputs []*pb.ModelInferRequest_InferRequestedOutputTensor // built once, shared read-only by every request
	token   func() (string, error)
	target  string
}

func newGRPC(c *Config, outputs []string, tlsConf *tls.Config, token func() (string, error)) (*grpcClient, error) {
	target, useTLS, err := grpcTarget(c.URL)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(tlsConf)
	}
	// The connection is lazy: a server that is down fails calls, not this.
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", target, err)
	}
	g := &grpcClient{conn: conn, client: pb.NewGRPCInferenceServiceClient(conn), model: c.Model, version: c.Version,
		binary: c.Binary, token: token, target: target}
	for _, o := range outputs {
		g.outputs = append(g.outputs, &pb.ModelInferRequest_InferRequestedOutputTensor{Name: o})
	}
	return g, nil
}

func (g *grpcClient) withToken(ctx context.Context) (context.Context, error) {
	if g.token == nil {
		return ctx, nil
	}
	tok, err := g.token()
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

func (g *grpcClient) Infer(ctx context.Context, id string, ins []*tensor) ([]*tensor, error) {
	req := &pb.ModelInferRequest{ModelName: g.model, ModelVersion: g.version, Id: id, Outputs: g.outputs}
	for _, t := range ins {
		it := &pb.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		if g.binary {
			req.RawInputContents = append(req.RawInputContents, rawBytes(t))
		} else {
			it.Contents = typedContents(t)
		}
		req.Inputs = append(req.Inputs, it)
	}
	ctx, err := g.withToken(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := g.client.ModelInfer(ctx, req)
	if err != nil {
		st := status.Convert(err)
		if ctx.Err() != nil || st.Code() == codes.DeadlineExceeded {
			// The server enforces the call's deadline too, and may give up a
			// moment before the local timer fires: the same timeout either way.
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("gRPC ModelInfer %s at %s: no answer in time: %w", g.model, g.target, cause)
		}
		e := fmt.Errorf("gRPC ModelInfer %s at %s: %s: %s%s", g.model, g.target, st.Code(), st.Message(), grpcHint(st.Code()))
		if st.Code() == codes.Unavailable {
			return nil, models.Retryable(e)
		}
		return nil, e
	}
	out := make([]*tensor, 0, len(resp.Outputs))
	raw := resp.RawOutputContents
	if len(raw) > 0 && len(raw) != len(resp.Outputs) {
		return nil, fmt.Errorf("gRPC ModelInfer %s: the response has %d outputs but %d raw_output_contents", g.model, len(resp.Outputs), len(raw))
	}
	for i, o := range resp.Outputs {
		t := &tensor{Name: o.Name, Datatype: strings.ToUpper(o.Datatype), Shape: o.Shape}
		if len(raw) > 0 {
			err = fromRaw(t, raw[i])
		} else {
			err = fromContents(t, o.Contents)
		}
		if err != nil {
			return nil, fmt.Errorf("gRPC ModelInfer %s: output %q: %w", g.model, o.Name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func (g *grpcClient) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ctx, err := g.withToken(ctx)
	if err != nil {
		return err
	}
	r, err := g.client.ModelReady(ctx, &pb.ModelReadyRequest{Name: g.model, Version: g.version})
	if err != nil {
		return fmt.Errorf("gRPC ModelReady %s at %s: %w", g.model, g.target, err)
	}
	if !r.Ready {
		return fmt.Errorf("gRPC ModelReady %s at %s: the model is not ready", g.model, g.target)
	}
	return nil
}

func (g *grpcClient) Close() error { return g.conn.Close() }

func grpcHint(c codes.Code) string {
	switch c {
	case codes.NotFound:
		return " (is the model loaded on the server, under this name and version?)"
	case codes.Unauthenticated, codes.PermissionDenied:
		return " (check the model's token_env or token_file)"
	}
	return ""
}

func typedContents(t *tensor) *pb.InferTensorContents {
	c := &pb.InferTensorContents{}
	switch t.Datatype {
	case "FP64":
		c.Fp64Contents = t.F64
	case "FP32":
		c.Fp32Contents = convert[float32](t.F64)
	case "INT64":
		c.Int64Contents = t.I64
	case "INT32":
		c.IntContents = convert[int32](t.I64)
	}
	return c
}

// convert copies xs into a new slice of another numeric type.
func convert[D, S int32 | int64 | uint32 | uint64 | float32 | float64](xs []S) []D {
	out := make([]D, len(xs))
	for i, v := range xs {
		out[i] = D(v)
	}
	return out
}

// rawBytes lays t out as the protocol's raw contents: little-endian,
// row-major, no padding.
func rawBytes(t *tensor) []byte {
	var b []byte
	switch t.Datatype {
	case "FP64":
		b = make([]byte, 0, 8*len(t.F64))
		for _, v := range t.F64 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	case "FP32":
		b = make([]byte, 0, 4*len(t.F64))
		for _, v := range t.F64 {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		}
	case "INT64":
		b = make([]byte, 0, 8*len(t.I64))
		for _, v := range t.I64 {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	case "INT32":
		b = make([]byte, 0, 4*len(t.I64))
		for _, v := range t.I64 {
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
		}
	}
	return b
}

// rawSize is the byte size of one raw element of each fixed-size datatype.
var rawSize = map[string]int{"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2,
	"UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}

func fromRaw(t *tensor, b []byte) error {
	size := rawSize[t.Datatype]
	if t.Datatype == "BYTES" {
		for len(b) > 0 {
			if len(b) < 4 {
				return fmt.Errorf("raw BYTES data ends inside a length prefix")
			}
			n := int(binary.LittleEndian.Uint32(b))
			if len(b) < 4+n {
				return fmt.Errorf("raw BYTES element of %d bytes runs past the data", n)
			}
			t.Str = append(t.Str, string(b[4:4+n]))
			b = b[4+n:]
		}
		if t.Str == nil {
			t.Str = []string{}
		}
		return nil
	}
	if size == 0 {
		return fmt.Errorf("datatype %q is not in the protocol", t.Datatype)
	}
	if len(b)%size != 0 {
		return fmt.Errorf("%d raw bytes are not a whole number of %s elements", len(b), t.Datatype)
	}
	n := len(b) / size
	if isFloat(t.Datatype) {
		t.F64 = make([]float64, n)
	} else {
		t.I64 = make([]int64, n)
	}
	for i := 0; i < n; i++ {
		e := b[i*size : (i+1)*size]
		switch t.Datatype {
		case "FP64":
			t.F64[i] = math.Float64frombits(binary.LittleEndian.Uint64(e))
		case "FP32":
			t.F64[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(e)))
		case "FP16":
			t.F64[i] = halfToFloat(binary.LittleEndian.Uint16(e))
		case "INT64", "UINT64":
			t.I64[i] = int64(binary.LittleEndian.Uint64(e))
		case "INT32":
			t.I64[i] = int64(int32(binary.LittleEndian.Uint32(e)))
		case "UINT32":
			t.I64[i] = int64(binary.LittleEndian.Uint32(e))
		case "INT16":
			t.I64[i] = int64(int16(binary.LittleEndian.Uint16(e)))
		case "UINT16":
			t.I64[i] = int64(binary.LittleEndian.Uint16(e))
		case "INT8":
			t.I64[i] = int64(int8(e[0]))
		case "UINT8", "BOOL":
			t.I64[i] = int64(e[0])
		}
	}
	return nil
}

func fromContents(t *tensor, c *pb.InferTensorContents) error {
	if c == nil {
		c = &pb.InferTensorContents{}
	}
	switch t.Datatype {
	case "FP64":
		t.F64 = c.Fp64Contents
	case "FP32", "FP16":
		t.F64 = convert[float64](c.Fp32Contents)
	case "INT64":
		t.I64 = c.Int64Contents
	case "INT8", "INT16", "INT32":
		t.I64 = convert[int64](c.IntContents)
	case "UINT8", "UINT16", "UINT32":
		t.I64 = convert[int64](c.UintContents)
	case "UINT64":
		t.I64 = convert[int64](c.Uint64Contents)
	case "BOOL":
		t.I64 = make([]int64, len(c.BoolContents))
		for i, v := range c.BoolContents {
			if v {
				t.I64[i] = 1
			}
		}
	case "BYTES":
		t.Str = make([]string, len(c.BytesContents))
		for i, v := range c.BytesContents {
			t.Str[i] = string(v)
		}
	default:
		return fmt.Errorf("datatype %q is not in the protocol", t.Datatype)
	}
	if t.F64 == nil && t.I64 == nil && t.Str == nil {
		t.F64 = []float64{}
	}
	return nil
}

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac / 1024 * math.Pow(2, -14)
	case 0x1f:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}
