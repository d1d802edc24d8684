package kserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flexiflow/flexiflow/stages/models"
)

// restClient speaks the Open Inference Protocol's REST binding with JSON
// tensors: POST {url}/v2/models/{model}[/versions/{version}]/infer.
type restClient struct {
	infer   string // the infer endpoint
	ready   string // the model's readiness endpoint
	http    *http.Client
	outputs []jsonOutput // the requested outputs, built once
	token   func() (string, error)
	target  string // for messages
}

func newREST(c *Config, outputs []string, tlsConf *tls.Config, token func() (string, error)) *restClient {
	base := strings.TrimRight(c.URL, "/")
	path := "/v2/models/" + url.PathEscape(c.Model)
	if c.Version != "" {
		path += "/versions/" + url.PathEscape(c.Version)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = 64 // enough for the stage's workers; max_concurrency caps calls above this
	var requested []jsonOutput
	for _, o := range outputs {
		requested = append(requested, jsonOutput{Name: o})
	}
	return &restClient{
		infer:   base + path + "/infer",
		ready:   base + path + "/ready",
		http:    &http.Client{Transport: tr},
		outputs: requested,
		token:   token,
		target:  base,
	}
}

type jsonTensor struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data"`
}

type jsonOutput struct {
	Name string `json:"name"`
}

type jsonRequest struct {
	ID      string       `json:"id,omitempty"`
	Inputs  []jsonTensor `json:"inputs"`
	Outputs []jsonOutput `json:"outputs,omitempty"`
}

type jsonResponse struct {
	Outputs []jsonOutTensor `json:"outputs"`
	Error   string          `json:"error"`
}

// jsonOutTensor is an output tensor as the response carries it; its data,
// nested arrays of numbers, bools or strings, is decoded by datatype.
type jsonOutTensor struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

func (r *restClient) Infer(ctx context.Context, id string, ins []*tensor) ([]*tensor, error) {
	req := jsonRequest{ID: id, Outputs: r.outputs}
	for _, t := range ins {
		jt := jsonTensor{Name: t.Name, Shape: t.Shape, Datatype: t.Datatype}
		if t.F64 != nil {
			jt.Data = t.F64
		} else {
			jt.Data = t.I64
		}
		req.Inputs = append(req.Inputs, jt)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the request as JSON: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.infer, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the request for %s: %w", r.infer, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if err := r.authorize(hreq); err != nil {
		return nil, err
	}
	resp, err := r.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("POST %s: no answer in time: %w", r.infer, ctx.Err())
		}
		return nil, models.Retryable(fmt.Errorf("POST %s: server unreachable: %w", r.infer, unwrapURL(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("POST %s: the answer did not arrive in time: %w", r.infer, ctx.Err())
		}
		return nil, models.Retryable(fmt.Errorf("POST %s: reading the response: %w", r.infer, err))
	}
	var jr jsonResponse
	jerr := json.Unmarshal(data, &jr)
	if resp.StatusCode != http.StatusOK {
		msg := jr.Error
		if jerr != nil || msg == "" {
			msg = snippet(data)
		}
		err := fmt.Errorf("POST %s: server answered %s: %q%s", r.infer, resp.Status, msg, hint(resp.StatusCode))
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return nil, models.Retryable(err)
		}
		return nil, err
	}
	if jerr != nil {
		return nil, fmt.Errorf("POST %s: the response is not Open Inference Protocol JSON (%v): %s", r.infer, jerr, snippet(data))
	}
	out := make([]*tensor, 0, len(jr.Outputs))
	for i, jt := range jr.Outputs {
		t, err := decodeJSONTensor(jt)
		if err != nil {
			return nil, fmt.Errorf("POST %s: output %d: %w", r.infer, i, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func decodeJSONTensor(jt jsonOutTensor) (*tensor, error) {
	t := &tensor{Name: jt.Name, Datatype: strings.ToUpper(jt.Datatype), Shape: jt.Shape}
	dec := json.NewDecoder(bytes.NewReader(jt.Data))
	dec.UseNumber()
	var data any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("tensor %q: data is not JSON: %w", jt.Name, err)
	}
	var flat []any
	flatten(data, &flat)
	switch {
	case isFloat(t.Datatype):
		t.F64 = make([]float64, len(flat))
		for i, v := range flat {
			n, ok := v.(json.Number)
			if !ok {
				return nil, fmt.Errorf("tensor %q is %s but element %d is %v", jt.Name, t.Datatype, i, v)
			}
			f, err := n.Float64()
			if err != nil {
				return nil, fmt.Errorf("tensor %q element %d: %w", jt.Name, i, err)
			}
			t.F64[i] = f
		}
	case t.Datatype == "BYTES":
		t.Str = make([]string, len(flat))
		for i, v := range flat {
			t.Str[i] = fmt.Sprint(v)
		}
	case t.Datatype == "BOOL" || strings.HasPrefix(t.Datatype, "INT") || strings.HasPrefix(t.Datatype, "UINT"):
		t.I64 = make([]int64, len(flat))
		for i, v := range flat {
			switch x := v.(type) {
			case bool:
				if x {
					t.I64[i] = 1
				}
			case json.Number:
				n, err := x.Int64()
				if err != nil {
					return nil, fmt.Errorf("tensor %q is %s but element %d is %v", jt.Name, t.Datatype, i, x)
				}
				t.I64[i] = n
			default:
				return nil, fmt.Errorf("tensor %q is %s but element %d is %v", jt.Name, t.Datatype, i, v)
			}
		}
	default:
		return nil, fmt.Errorf("tensor %q has datatype %q, which is not in the protocol", jt.Name, jt.Datatype)
	}
	return t, nil
}

func flatten(v any, out *[]any) {
	if xs, ok := v.([]any); ok {
		for _, x := range xs {
			flatten(x, out)
		}
		return
	}
	if v != nil {
		*out = append(*out, v)
	}
}

// Ready reports whether the server says the model is ready.
func (r *restClient) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ready, nil)
	if err != nil {
		return err
	}
	if err := r.authorize(req); err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", r.ready, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", r.ready, resp.Status, snippet(b))
	}
	return nil
}

// authorize sets the bearer token on req, when the model has one.
func (r *restClient) authorize(req *http.Request) error {
	if r.token == nil {
		return nil
	}
	tok, err := r.token()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (r *restClient) Close() error { r.http.CloseIdleConnections(); return nil }

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func hint(status int) string {
	switch status {
	case http.StatusNotFound:
		return " (is the model loaded on the server, under this name and version?)"
	case http.StatusUnauthorized, http.StatusForbidden:
		return " (check the model's token_env or token_file)"
	}
	return ""
}
