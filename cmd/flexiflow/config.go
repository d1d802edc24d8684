package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/flexiflow/flexiflow/sinks/clickhouse"
	"github.com/flexiflow/flexiflow/stages/suggest"
	"github.com/flexiflow/flexiflow/stream"
)

// Configuration comes from four layers, the first that sets a flag wins:
//
//	flags                   --brokers kafka:9092
//	environment             FLEXIFLOW_BROKERS=kafka:9092 (FLEXIFLOW_ + the flag's name, upper case, - as _)
//	the --config file       brokers: kafka:9092 (YAML; keys are flag names)
//	defaults                as --help shows them
//
// One config file can serve every command: a key that is a flag of some
// other command is ignored, a key that is no command's flag is an error.
// Secrets are never flags: the Kafka SASL password comes from
// FLEXIFLOW_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file.

// envPrefix starts every environment variable FlexiFlow reads.
const envPrefix = "FLEXIFLOW_"

// envSASLPassword holds the Kafka SASL password.
const envSASLPassword = envPrefix + "KAFKA_SASL_PASSWORD"

// kafkaFlags are the Kafka security settings every command shares.
type kafkaFlags struct {
	tls                bool
	caFile             string
	certFile, keyFile  string
	serverName         string
	insecureSkipVerify bool
	saslMechanism      string
	saslUser           string
	saslPasswordFile   string
}

// clickhouseFlags are the ClickHouse connection settings beyond the DSN.
type clickhouseFlags struct {
	caFile       string
	passwordFile string
}

// envClickHousePassword carries the ClickHouse password when no file does.
const envClickHousePassword = envPrefix + "CLICKHOUSE_PASSWORD"

// clickhouseOptions turns the ClickHouse flags into connection options:
// the password comes from --clickhouse-password-file or the environment,
// never from a flag's value.
func (g *globals) clickhouseOptions() ([]clickhouse.Option, error) {
	var opts []clickhouse.Option
	if g.clickhouse.caFile != "" {
		opts = append(opts, clickhouse.WithCAFile(g.clickhouse.caFile))
	}
	pass, err := secret(envClickHousePassword, g.clickhouse.passwordFile, "--clickhouse-password-file")
	if err != nil {
		return nil, err
	}
	if pass != "" {
		opts = append(opts, clickhouse.WithPassword(string(pass)))
	}
	return opts, nil
}

// configure adds the settings every command shares (--config, Kafka TLS
// and SASL), the environment and file layers, and the probe command.
func configure(root *cobra.Command, g *globals) {
	var configPath string
	pf := root.PersistentFlags()
	pf.StringVar(&configPath, "config", "", "YAML file of settings (keys are flag names); flags and FLEXIFLOW_* environment variables override it")
	k := &g.kafka
	pf.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka over TLS (implied by the other --kafka-tls-* flags)")
	pf.StringVar(&k.caFile, "kafka-tls-ca", "", "PEM file of the CA that signed the brokers' certificates (default: the system's)")
	pf.StringVar(&k.certFile, "kafka-tls-cert", "", "client certificate (PEM) for brokers that require one")
	pf.StringVar(&k.keyFile, "kafka-tls-key", "", "client key (PEM) for --kafka-tls-cert")
	pf.StringVar(&k.serverName, "kafka-tls-server-name", "", "name to check the brokers' certificates against (default: the host dialed)")
	pf.BoolVar(&k.insecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate (experiments only: anyone on the path can read the traffic)")
	pf.StringVar(&k.saslMechanism, "kafka-sasl-mechanism", "", "authenticate to Kafka with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from "+envSASLPassword+" or --kafka-sasl-password-file)")
	pf.StringVar(&k.saslUser, "kafka-sasl-user", "", "SASL user name")
	pf.StringVar(&k.saslPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password (e.g. a mounted secret); trailing newline ignored")
	c := &g.clickhouse
	pf.StringVar(&c.caFile, "clickhouse-tls-ca", "", "PEM file of the CA that signed ClickHouse's certificate; connects over TLS (a public CA needs only ?secure=true in the DSN)")
	pf.StringVar(&c.passwordFile, "clickhouse-password-file", "", "file holding the ClickHouse password (e.g. a mounted secret), so the DSN carries none; "+envClickHousePassword+" works too")
	g.registry.add(pf)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		warnUnknownEnv(cmd.ErrOrStderr(), root, os.Environ())
		if err := applyLayers(cmd, root, configPath, os.LookupEnv); err != nil {
			return err
		}
		return checkRanges(cmd)
	}
	root.AddCommand(newProbeCmd())
}

// kafkaConfig builds the client configuration for brokers from the shared
// flags, reading the SASL password from the environment or its file.
func (g *globals) kafkaConfig(brokers string, log *zap.Logger) (stream.Config, error) {
	cfg := stream.Config{Brokers: splitBrokers(brokers), Log: log, ConnectTimeout: g.connectTimeout}
	k := g.kafka
	if k.tls || k.caFile != "" || k.certFile != "" || k.keyFile != "" || k.serverName != "" || k.insecureSkipVerify {
		cfg.TLS = &stream.TLS{CAFile: k.caFile, CertFile: k.certFile, KeyFile: k.keyFile, ServerName: k.serverName, InsecureSkipVerify: k.insecureSkipVerify}
	}
	if k.saslMechanism == "" {
		if k.saslUser != "" || k.saslPasswordFile != "" {
			return cfg, errors.New("--kafka-sasl-user and --kafka-sasl-password-file need --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return cfg, cfg.Validate()
	}
	pass, err := secret(envSASLPassword, k.saslPasswordFile, "--kafka-sasl-password-file")
	if err != nil {
		return cfg, err
	}
	cfg.SASL = &stream.SASL{Mechanism: strings.ToUpper(k.saslMechanism), User: k.saslUser, Password: pass}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if log != nil {
		log.Info("Kafka client security", zap.Stringer("kafka", cfg))
		if cfg.TLS == nil && cfg.SASL.Mechanism == stream.SASLPlain {
			log.Warn("SASL PLAIN without TLS sends the password in clear text; add --kafka-tls")
		}
	}
	return cfg, nil
}

// secret reads a secret from the file named by a flag, else from the
// environment variable. Secrets are never flag values: those show in ps and
// in shell history.
func secret(env, file, flag string) (stream.Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, err)
		}
		return stream.Secret(strings.TrimRight(string(b), "\r\n")), nil
	}
	return stream.Secret(os.Getenv(env)), nil
}

// envName is the environment variable that sets a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyLayers sets each flag of cmd the command line left alone from the
// environment, else from the config file. Values are checked as flags are
// (a bad number or duration is an error naming where it came from), and a
// file key that is no command's flag is an error naming the key and file.
func applyLayers(cmd, root *cobra.Command, configPath string, lookup func(string) (string, bool)) error {
	flags := cmd.Flags()
	if !flags.Changed("config") {
		if v, ok := lookup(envName("config")); ok {
			configPath = v
		}
	}
	file, err := readConfigFile(configPath, root)
	if err != nil {
		return err
	}
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "config" || f.Name == "version" {
			return
		}
		if v, ok := lookup(envName(f.Name)); ok {
			if err := flags.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s (sets --%s): %w", envName(f.Name), f.Name, err))
			}
			return
		}
		if s, ok := file[f.Name]; ok {
			v, err := s.value()
			if err == nil {
				err = flags.Set(f.Name, v)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s (sets --%s): %w", configPath, s.node.Line, f.Name, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// setting is one key of the config file.
type setting struct{ node *yaml.Node }

// value is the setting as a flag value: scalars as written, lists joined
// with commas (how list flags such as --brokers take them).
func (s setting) value() (string, error) {
	switch s.node.Kind {
	case yaml.ScalarNode:
		return s.node.Value, nil
	case yaml.SequenceNode:
		var vs []string
		for _, n := range s.node.Content {
			if n.Kind != yaml.ScalarNode {
				return "", errors.New("a list of plain values is expected")
			}
			vs = append(vs, n.Value)
		}
		return strings.Join(vs, ","), nil
	}
	return "", errors.New("a value or a list of values is expected, not a map")
}

// readConfigFile reads the YAML map of settings at path ("" means none).
func readConfigFile(path string, root *cobra.Command) (map[string]setting, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("--config %s is not valid YAML: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the config file must be a map of settings (flag name: value), e.g. \"brokers: kafka:9092\"", path, m.Line)
	}
	known := allFlags(root)
	out := map[string]setting{}
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		switch {
		case !known[key.Value]:
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q: keys are flag names without dashes, e.g. %s", path, key.Line, key.Value, examples(known)))
		case key.Value == "config":
			errs = append(errs, fmt.Errorf("%s:%d: a config file cannot name another config file", path, key.Line))
		default:
			if _, dup := out[key.Value]; dup {
				errs = append(errs, fmt.Errorf("%s:%d: %q is set twice", path, key.Line, key.Value))
			}
			out[key.Value] = setting{val}
		}
	}
	return out, errors.Join(errs...)
}

// allFlags names every flag of every command in the tree.
func allFlags(c *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { names[f.Name] = true }
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
	delete(names, "help")
	return names
}

func examples(known map[string]bool) string {
	var ex []string
	for _, k := range []string{"brokers", "workflow", "step", "metrics-addr", "log-level"} {
		if known[k] {
			ex = append(ex, k)
		}
	}
	sort.Strings(ex)
	return strings.Join(ex, ", ") + " (see --help)"
}

func newProbeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 if an HTTP endpoint answers 200: a health check for images without curl",
		Long: `Request URL and exit 0 when it answers 200, 1 otherwise (with the status or
error on stderr). The container image has no shell or curl, so health checks
call the binary itself:

  flexiflow probe http://127.0.0.1:9100/readyz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return fmt.Errorf("probe %s: %w", args[0], err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("probe %s: %w", args[0], err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("probe %s: %s: %s", args[0], resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Fprint(cmd.OutOrStdout(), string(body))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// Flag ranges. A flag declares its least value with atLeast; checkRanges
// refuses a value below it, from whichever layer it came, instead of the
// command clamping or ignoring it.
const minAnnotation = "flexiflow-min"

// atLeast declares that flag name of fs takes values >= min (an int, or a
// duration such as 1ms).
func atLeast(fs *pflag.FlagSet, name, min string) {
	if err := fs.SetAnnotation(name, minAnnotation, []string{min}); err != nil {
		panic(err) // a flag name typo in this file
	}
	f := fs.Lookup(name)
	f.Usage += " (at least " + min + ")"
}

// checkRanges checks every flag of cmd that declares a least value.
func checkRanges(cmd *cobra.Command) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		m, ok := f.Annotations[minAnnotation]
		if !ok {
			return
		}
		lo := m[0]
		bad := false
		switch f.Value.Type() {
		case "int":
			v, _ := strconv.Atoi(f.Value.String())
			n, _ := strconv.Atoi(lo)
			bad = v < n
		case "duration":
			v, _ := time.ParseDuration(f.Value.String())
			n, _ := time.ParseDuration(lo)
			bad = v < n
		}
		if bad {
			errs = append(errs, fmt.Errorf("--%s %s is out of range: it must be at least %s (set by the flag, %s or the config file)", f.Name, f.Value, lo, envName(f.Name)))
		}
	})
	return errors.Join(errs...)
}

// otherEnv are the FLEXIFLOW_ variables that are not flags: secrets, and
// the test suite's own settings.
var otherEnv = []string{envSASLPassword, envClickHousePassword, envRegistryPassword, envRegistryToken,
	envPrefix + "KAFKA_BROKERS", envPrefix + "REGISTRY_URL", envPrefix + "CHDB_PYTHON", envPrefix + "TEST_TOKEN", envPrefix + "IMAGE"}

// warnUnknownEnv warns about FLEXIFLOW_ variables no flag reads, such as a
// misspelt FLEXIFLOW_BROKRS, naming the closest real one.
func warnUnknownEnv(w io.Writer, root *cobra.Command, environ []string) {
	known := map[string]bool{}
	var suffixes []string // the names without the prefix they all share
	for f := range allFlags(root) {
		known[envName(f)] = true
		suffixes = append(suffixes, strings.TrimPrefix(envName(f), envPrefix))
	}
	for _, e := range otherEnv {
		known[e] = true
		suffixes = append(suffixes, strings.TrimPrefix(e, envPrefix))
	}
	sort.Strings(suffixes)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) || known[k] {
			continue
		}
		hint := ""
		if c := suggest.Closest(strings.TrimPrefix(k, envPrefix), suffixes); c != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", envPrefix+c)
		}
		fmt.Fprintf(w, "warning: environment variable %s is not a FlexiFlow setting and is ignored%s\n", k, hint)
	}
}
