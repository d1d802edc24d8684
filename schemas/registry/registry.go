package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// ErrUnknown is a schema id or subject the registry does not have.
var ErrUnknown = errors.New("not in the schema registry")

// Config is where the registry is and how to authenticate to it. Secrets
// are values here; the command line reads them from files or the
// environment, never from flags.
type Config struct {
	URL string // http(s)://host:port[/path]; several separated by commas

	User, Password string // basic auth (both, or neither)
	Token          string // bearer token (instead of basic auth)
	CAFile         string // PEM CA for an https registry (default: the system's)

	// Timeout bounds each request (default 10s).
	Timeout time.Duration
}

// Enabled reports whether a registry is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// String names the registry for logs and messages, without secrets.
func (c Config) String() string {
	auth := "no auth"
	switch {
	case c.Token != "":
		auth = "bearer token"
	case c.User != "":
		auth = "basic auth as " + c.User
	}
	return c.URL + " (" + auth + ")"
}

// Client fetches writer schemas by id and registers schemas under
// subjects, caching both.
type Client struct {
	cfg Config
	sr  *sr.Client

	mu  sync.Mutex
	ids map[int]string // id → schema text
	reg map[string]int // subject + "\x00" + schema → id
}

// New returns a client of the registry cfg names. It does not connect:
// the first request does.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("no schema registry URL: give --schema-registry http://host:8081 (or FLEXIFLOW_SCHEMA_REGISTRY)")
	}
	urls := strings.Split(cfg.URL, ",")
	for i, u := range urls {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("schema registry URL %q: want http://host:port or https://host:port", u)
		}
		urls[i] = u
	}
	if cfg.Token != "" && (cfg.User != "" || cfg.Password != "") {
		return nil, errors.New("schema registry: give a bearer token or a user and password, not both")
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, errors.New("schema registry basic auth needs both a user (--schema-registry-user) and a password (--schema-registry-password-file or FLEXIFLOW_SCHEMA_REGISTRY_PASSWORD)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("schema registry CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("schema registry CA %s holds no PEM certificate", cfg.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	opts := []sr.ClientOpt{sr.URLs(urls...), sr.HTTPClient(&http.Client{Transport: transport, Timeout: cfg.Timeout}), sr.UserAgent("flexiflow")}
	switch {
	case cfg.Token != "":
		opts = append(opts, sr.BearerToken(cfg.Token))
	case cfg.User != "":
		opts = append(opts, sr.BasicAuth(cfg.User, cfg.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", cfg, err)
	}
	return &Client{cfg: cfg, sr: cl, ids: map[int]string{}, reg: map[string]int{}}, nil
}

// String names the registry.
func (c *Client) String() string { return c.cfg.String() }

// SchemaByID returns the text of schema id. An id the registry does not
// have is ErrUnknown; a registry that does not answer, or answers with a
// server error, is another error (try again later).
func (c *Client) SchemaByID(ctx context.Context, id int) (string, error) {
	c.mu.Lock()
	s, ok := c.ids[id]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	got, err := c.sr.SchemaByID(ctx, id)
	if err != nil {
		return "", c.wrap(fmt.Sprintf("schema id %d", id), err)
	}
	if got.Type != sr.TypeAvro {
		return "", fmt.Errorf("schema id %d is a %s schema, not Avro: %w", id, got.Type, ErrUnknown)
	}
	c.mu.Lock()
	c.ids[id] = got.Schema
	c.mu.Unlock()
	return got.Schema, nil
}

// Register registers an Avro schema under subject, or finds it there, and
// returns its id.
func (c *Client) Register(ctx context.Context, subject, schema string) (int, error) {
	key := subject + "\x00" + schema
	c.mu.Lock()
	id, ok := c.reg[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	got, err := c.sr.CreateSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	if err != nil {
		return 0, c.wrap("registering a schema under subject "+subject, err)
	}
	c.mu.Lock()
	c.reg[key] = got.ID
	c.ids[got.ID] = schema
	c.mu.Unlock()
	return got.ID, nil
}

// wrap says what failed and whether it is the registry's answer (ErrUnknown
// for a missing schema or subject, the registry's message for a refusal) or
// the registry being unreachable.
func (c *Client) wrap(what string, err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound && (re.ErrorCode == 40401 || re.ErrorCode == 40402 || re.ErrorCode == 40403):
			// The registry's own answer: no such subject, version or schema.
			return fmt.Errorf("%s: %w at %s (%s)", what, ErrUnknown, c.cfg.URL, re.Message)
		case re.StatusCode == http.StatusNotFound:
			// Not the registry's API at all: a wrong URL is no event's fault.
			return fmt.Errorf("%s: %s answered HTTP 404 without a schema registry's error code: is the URL right (Apicurio's ends in /apis/ccompat/v7)? retrying", what, c.cfg.URL)
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%s: the schema registry at %s refused our credentials (HTTP %d: %s); check --schema-registry-user and its password, or the token", what, c.cfg.URL, re.StatusCode, re.Message)
		case re.StatusCode >= 500:
			return fmt.Errorf("%s: the schema registry at %s answered HTTP %d (%s); retrying", what, c.cfg.URL, re.StatusCode, re.Message)
		default:
			return &Refused{What: what, Status: re.StatusCode, Msg: re.Message}
		}
	}
	return fmt.Errorf("%s: the schema registry at %s did not answer: %w; retrying", what, c.cfg.URL, err)
}

// Refused is a request the registry answered with a client error other
// than not found: a schema it will not register (incompatible with the
// subject's earlier versions, or invalid). Retrying does not help.
type Refused struct {
	What   string
	Status int
	Msg    string
}

func (e *Refused) Error() string {
	return fmt.Sprintf("%s: the schema registry refused it (HTTP %d): %s", e.What, e.Status, e.Msg)
}
