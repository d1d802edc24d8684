package registry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/flexiflow/flexiflow/schemas/registry"
	"github.com/flexiflow/flexiflow/schemas/registry/registrytest"
)

const schemaV1 = `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"}]}`

// TestRealRegistry registers a schema in the real registry, reads it back
// by id, and tells an unknown id from a registry that is not there.
func TestRealRegistry(t *testing.T) {
	url := registrytest.URL(t)
	c, err := registry.New(registry.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subject := registrytest.Subject("registry-test")
	id, err := c.Register(ctx, subject, schemaV1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Register(ctx, subject, schemaV1)
	if err != nil || again != id {
		t.Fatalf("registering the same schema again: id %d, %v; want %d", again, err, id)
	}
	fresh, err := registry.New(registry.Config{URL: url}) // no cache
	if err != nil {
		t.Fatal(err)
	}
	got, err := fresh.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `"Order"`) {
		t.Fatalf("schema %d is %s", id, got)
	}
	if _, err := fresh.SchemaByID(ctx, 1<<30); !errors.Is(err, registry.ErrUnknown) {
		t.Fatalf("an id the registry lacks: %v, want ErrUnknown", err)
	}
	// The registry's host with the wrong path: not an unknown schema.
	wrong := url[:strings.Index(url[len("http://"):], "/")+len("http://")]
	wc, err := registry.New(registry.Config{URL: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.SchemaByID(ctx, id); err == nil || errors.Is(err, registry.ErrUnknown) || !strings.Contains(err.Error(), "is the URL right") {
		t.Fatalf("the registry's host without its API path: %v, want an error asking about the URL (not ErrUnknown)", err)
	}
	down, err := registry.New(registry.Config{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.SchemaByID(ctx, id)
	if err == nil || errors.Is(err, registry.ErrUnknown) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a registry that is not there: %v, want an error saying it did not answer (not ErrUnknown)", err)
	}
}

// TestAuthAndServerErrors uses franz-go's in-memory registry for what the
// real one here is not set up to do: refuse credentials, and fail with 5xx.
func TestAuthAndServerErrors(t *testing.T) {
	fake := srfake.New(srfake.WithAuth("Bearer s3cret"))
	defer fake.Close()
	fake.SeedSchema("a-value", 1, 7, sr.Schema{Schema: schemaV1, Type: sr.TypeAvro})
	ctx := context.Background()

	good, _ := registry.New(registry.Config{URL: fake.URL(), Token: "s3cret"})
	if _, err := good.SchemaByID(ctx, 7); err != nil {
		t.Fatalf("with the right token: %v", err)
	}
	bad, _ := registry.New(registry.Config{URL: fake.URL(), Token: "wrong"})
	if _, err := bad.SchemaByID(ctx, 7); err == nil || !strings.Contains(err.Error(), "refused our credentials") {
		t.Fatalf("with a wrong token: %v", err)
	}

	fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error_code":50003,"message":"store unavailable"}`))
		return true
	})
	fresh, _ := registry.New(registry.Config{URL: fake.URL(), Token: "s3cret"})
	_, err := fresh.SchemaByID(ctx, 7)
	if err == nil || errors.Is(err, registry.ErrUnknown) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("a registry answering 503: %v, want a retryable error naming HTTP 503", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  registry.Config
		want string
	}{
		{registry.Config{}, "no schema registry URL"},
		{registry.Config{URL: "localhost:8081"}, "want http://host:port"},
		{registry.Config{URL: "http://r", User: "u"}, "needs both a user"},
		{registry.Config{URL: "http://r", User: "u", Password: "p", Token: "t"}, "not both"},
		{registry.Config{URL: "https://r", CAFile: "/nonexistent/ca.pem"}, "schema registry CA"},
	} {
		if _, err := registry.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	if s := (registry.Config{URL: "http://r", User: "u", Password: "hunter2"}).String(); strings.Contains(s, "hunter2") {
		t.Errorf("Config.String shows the password: %s", s)
	}
}
