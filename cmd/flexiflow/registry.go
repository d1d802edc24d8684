package main

import (
	"github.com/spf13/pflag"

	"github.com/flexiflow/flexiflow/schemas/event"
	"github.com/flexiflow/flexiflow/schemas/registry"
	"github.com/flexiflow/flexiflow/stages/workflow"
)

// registryFlags are the Schema Registry settings every command shares, for
// a workflow whose source or sink is confluent-avro.
type registryFlags struct {
	url          string
	user         string
	passwordFile string
	tokenFile    string
	caFile       string
}

// Secrets of the registry, when no file holds them.
const (
	envRegistryPassword = envPrefix + "SCHEMA_REGISTRY_PASSWORD"
	envRegistryToken    = envPrefix + "SCHEMA_REGISTRY_TOKEN"
)

func (r *registryFlags) add(pf *pflag.FlagSet) {
	pf.StringVar(&r.url, "schema-registry", "", "Confluent-compatible Schema Registry URL (Confluent, Apicurio's /apis/ccompat/v7, Redpanda, Karapace) for confluent-avro sources and sinks")
	pf.StringVar(&r.user, "schema-registry-user", "", "basic auth user for the schema registry (password from --schema-registry-password-file or "+envRegistryPassword+")")
	pf.StringVar(&r.passwordFile, "schema-registry-password-file", "", "file holding the schema registry's basic auth password; trailing newline ignored")
	pf.StringVar(&r.tokenFile, "schema-registry-token-file", "", "file holding a bearer token for the schema registry ("+envRegistryToken+" works too)")
	pf.StringVar(&r.caFile, "schema-registry-ca", "", "PEM file of the CA that signed an https schema registry's certificate (default: the system's)")
}

// usesRegistry reports whether the workflow's source or sink is
// confluent-avro.
func usesRegistry(wf *workflow.Workflow) bool {
	return (wf.Source != nil && wf.Source.Format == workflow.FormatConfluentAvro) ||
		(wf.Sink != nil && wf.Sink.Format == workflow.FormatConfluentAvro)
}

// schemaRegistry is the registry client for wf, or nil when wf needs none.
// Its secrets come from files or the environment, never from flags.
func (g *globals) schemaRegistry(wf *workflow.Workflow) (event.Registry, error) {
	if !usesRegistry(wf) {
		return nil, nil
	}
	r := g.registry
	pass, err := secret(envRegistryPassword, r.passwordFile, "--schema-registry-password-file")
	if err != nil {
		return nil, err
	}
	token, err := secret(envRegistryToken, r.tokenFile, "--schema-registry-token-file")
	if err != nil {
		return nil, err
	}
	// Both as given: registry.New refuses a token with a user and password,
	// and either half of basic auth alone, rather than one silently winning.
	return registry.New(registry.Config{URL: r.url, User: r.user, Password: string(pass), Token: string(token), CAFile: r.caFile})
}
