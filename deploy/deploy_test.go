package deploy

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/flexiflow/flexiflow/stages/workflow"
)

// The files under test, relative to this package.
const (
	composeFile    = "../docker-compose.yml"
	dockerfile     = "../Dockerfile"
	dockerignore   = "../.dockerignore"
	demoWorkflow   = "../examples/demo/digits.yaml"
	imageWorkflow  = "/etc/flexiflow/workflow.yaml" // where the image and the manifests put the workflow
	imageEntry     = "/flexiflow"                   // the image's ENTRYPOINT
	metricsPortStr = "9100"
)

var binary string

// TestMain builds the real binary once: every command a deployment runs is
// checked against its subcommands and flags.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flexiflow-deploy")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flexiflow")
	// Built in the root module, with its go.mod and go.sum: the binary users
	// deploy, not one resolved against this test module's dependencies.
	build := exec.Command("go", "build", "-o", binary, "./cmd/flexiflow")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building flexiflow: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command is what `flexiflow SUB --help` says about one subcommand.
type command struct {
	flags    map[string]bool // every flag, global ones included
	required []string        // flags whose help says "(required)"
}

// helpText is what the binary's help says: its subcommands, and the FLEXIFLOW_
// variables it reads directly rather than as flags (secrets, which are
// never flags).
type helpText struct {
	commands  map[string]*command
	secretEnv map[string]bool
}

// envRE matches a FLEXIFLOW_ variable named in help text.
var envRE = regexp.MustCompile(`FLEXIFLOW_[A-Z0-9_]*[A-Z0-9]`)

// envFlag is the flag a FLEXIFLOW_ variable sets.
func envFlag(k string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "FLEXIFLOW_"), "_", "-"))
}

// commandTree reads the subcommands from `flexiflow help` and each one's
// flags from `flexiflow SUB --help`, once. A variable the help names that
// sets no command's flag is one the binary reads itself: a secret.
var commandTree = sync.OnceValues(func() (*helpText, error) {
	out, err := exec.Command(binary, "help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("flexiflow help: %v\n%s", err, out)
	}
	tree := &helpText{commands: map[string]*command{}, secretEnv: map[string]bool{}}
	named := envRE.FindAllString(string(out), -1)
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			name := strings.Fields(line)[0]
			tree.commands[name] = nil
		}
	}
	flagRE := regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)`)
	for name := range tree.commands {
		out, err := exec.Command(binary, name, "--help").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("flexiflow %s --help: %v\n%s", name, err, out)
		}
		named = append(named, envRE.FindAllString(string(out), -1)...)
		c := &command{flags: map[string]bool{}}
		for _, line := range strings.Split(string(out), "\n") {
			if m := flagRE.FindStringSubmatch(line); m != nil {
				c.flags[m[1]] = true
				if strings.Contains(line, "(required)") {
					c.required = append(c.required, m[1])
				}
			}
		}
		tree.commands[name] = c
	}
	for _, k := range named {
		if !tree.anyFlag(envFlag(k)) {
			tree.secretEnv[k] = true
		}
	}
	return tree, nil
})

// checkInvocation checks that args (what follows the binary) name a real
// subcommand, that every --flag is one of its flags, that every FLEXIFLOW_
// variable in env sets one of its flags, and that its required flags are
// given by one or the other. Shared variables (one ConfigMap for every
// pod) need only be a flag of some command: a command ignores the others.
// It returns the subcommand and its flags.
func checkInvocation(t *testing.T, where string, args []string, env, shared map[string]string) (string, map[string]string) {
	t.Helper()
	tree, err := commandTree()
	if err != nil {
		t.Fatal(err)
	}
	if len(args) == 0 {
		t.Errorf("%s: no command: the image's entrypoint is the binary, so the first argument must be a subcommand", where)
		return "", nil
	}
	sub := args[0]
	c, ok := tree.commands[sub]
	if !ok {
		t.Errorf("%s: %q is not a flexiflow subcommand (flexiflow help lists %s)", where, sub, strings.Join(slices.Sorted(maps.Keys(tree.commands)), ", "))
		return sub, nil
	}
	given := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !c.flags[name] {
			t.Errorf("%s: flexiflow %s has no flag --%s", where, sub, name)
			continue
		}
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val = args[i+1]
			i++
		}
		given[name] = val
	}
	// The pod's own variables first: they win over the shared ones.
	for _, layer := range []struct {
		vars   map[string]string
		shared bool
	}{{env, false}, {shared, true}} {
		for k, v := range layer.vars {
			if !strings.HasPrefix(k, "FLEXIFLOW_") || tree.secretEnv[k] {
				continue
			}
			name := envFlag(k)
			switch {
			case c.flags[name]:
				if _, ok := given[name]; !ok {
					given[name] = v
				}
			case !layer.shared:
				t.Errorf("%s: environment %s sets --%s, which flexiflow %s does not have", where, k, name, sub)
			case !tree.anyFlag(name):
				t.Errorf("%s: shared setting %s sets --%s, which no flexiflow command has", where, k, name)
			}
		}
	}
	for _, r := range c.required {
		if _, ok := given[r]; !ok {
			t.Errorf("%s: flexiflow %s needs --%s (flag or FLEXIFLOW_ variable)", where, sub, r)
		}
	}
	return sub, given
}

// anyFlag reports whether some command has the flag --name.
func (tree *helpText) anyFlag(name string) bool {
	for _, c := range tree.commands {
		if c != nil && c.flags[name] {
			return true
		}
	}
	return false
}

// credentialsRE matches a URL with a password: scheme://user:PASSWORD@.
var credentialsRE = regexp.MustCompile(`://[^\s/:@]+:([^\s@]+)@`)

func loadDemoWorkflow(t *testing.T) *workflow.Workflow {
	t.Helper()
	wf, err := workflow.Load(demoWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	return wf
}

// workflowTopics lists every topic the workflow uses, with its partitions.
func workflowTopics(wf *workflow.Workflow) map[string]int {
	topics := map[string]int{wf.Topics.Out: wf.Partitions, wf.Topics.Traces: wf.Partitions, wf.Topics.State: 1}
	for _, s := range wf.Steps {
		topics[s.Topics.In] = wf.Partitions
		topics[s.Topics.Retry] = wf.Partitions
		topics[s.Topics.DLQ] = wf.Partitions
	}
	return topics
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	// Only the file's own defaults: no variables from this machine.
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithEnv(nil), cli.WithName("flexiflow"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load with the compose specification's loader: %v", err)
	}
	return p
}

func envOf(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// TestComposeFile loads docker-compose.yml as `docker compose config`
// does and checks what the deployment needs.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	wf := loadDemoWorkflow(t)
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatalf("docker-compose.yml has no service %q: %v", name, err)
		}
		return s
	}
	hasHealth := func(s types.ServiceConfig) bool {
		return s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 0
	}

	t.Run("official images", func(t *testing.T) {
		for name, prefix := range map[string]string{"kafka": "apache/kafka:", "clickhouse": "clickhouse/clickhouse-server:", "kafka-setup": "apache/kafka:"} {
			if img := svc(name).Image; !strings.HasPrefix(img, prefix) {
				t.Errorf("service %s: image %q, want the official %s…", name, img, prefix)
			}
		}
		k := svc("kafka").Environment
		if v := k["KAFKA_PROCESS_ROLES"]; v == nil || !strings.Contains(*v, "controller") {
			t.Errorf("kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
		}
	})

	// Which services run the FlexiFlow image, and with which subcommand.
	roles := map[string][]string{} // subcommand → services
	stepService := map[string]string{}
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		where := "service " + s.Name
		if s.Image == "" {
			t.Errorf("%s: builds the image but names no image, so the services would not share it", where)
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("%s: overrides the image's entrypoint %s", where, imageEntry)
		}
		sub, given := checkInvocation(t, where, s.Command, envOf(s), nil)
		roles[sub] = append(roles[sub], s.Name)
		if w, ok := given["workflow"]; ok {
			mounted := false
			for _, v := range s.Volumes {
				if v.Target == w {
					mounted = true
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("%s: mounts %s from %s: %v", where, w, v.Source, err)
					}
				}
			}
			if !mounted && w != imageWorkflow {
				t.Errorf("%s: --workflow %s is neither mounted nor in the image (%s)", where, w, imageWorkflow)
			}
		}
		if sub == "stage" {
			stepService[given["step"]] = s.Name
		}
		if addr, ok := given["metrics-addr"]; ok {
			port := addr[strings.LastIndex(addr, ":")+1:]
			if !hasHealth(s) {
				t.Errorf("%s: serves /readyz on %s but has no health check", where, addr)
			} else if test := strings.Join(s.HealthCheck.Test, " "); !strings.Contains(test, ":"+port+"/") {
				t.Errorf("%s: health check %q does not probe the --metrics-addr port %s", where, test, port)
			}
			published := false
			for _, pc := range s.Ports {
				if fmt.Sprint(pc.Target) == port && pc.Published != "" {
					published = true
				}
			}
			if !published {
				t.Errorf("%s: metrics port %s is not published", where, port)
			}
		}
	}

	t.Run("every step has a service", func(t *testing.T) {
		for _, st := range wf.Steps {
			if _, ok := stepService[st.Name]; !ok {
				t.Errorf("step %q of %s has no `flexiflow stage --step %s` service", st.Name, demoWorkflow, st.Name)
			}
		}
		for step := range stepService {
			if _, err := wf.Step(step); err != nil {
				t.Errorf("a stage service runs step %q: %v", step, err)
			}
		}
	})

	t.Run("roles", func(t *testing.T) {
		for _, sub := range []string{"stage", "sink", "migrate", "produce"} {
			if len(roles[sub]) == 0 {
				t.Errorf("no service runs `flexiflow %s`", sub)
			}
		}
	})

	t.Run("topic setup creates every workflow topic", func(t *testing.T) {
		setup := strings.Join(svc("kafka-setup").Command, " ")
		for topic := range workflowTopics(wf) {
			if !regexp.MustCompile(`(^|[\s"])` + regexp.QuoteMeta(topic) + `($|[\s";])`).MatchString(setup) {
				t.Errorf("kafka-setup does not create topic %s", topic)
			}
		}
		if !strings.Contains(setup, "cleanup.policy=compact") {
			t.Errorf("kafka-setup must create %s compacted", wf.Topics.State)
		}
	})

	t.Run("health checks and order", func(t *testing.T) {
		for _, name := range []string{"kafka", "clickhouse"} {
			if !hasHealth(svc(name)) {
				t.Errorf("service %s has no health check", name)
			}
		}
		for _, s := range p.Services {
			for dep, d := range s.DependsOn {
				ds, err := p.GetService(dep)
				if err != nil {
					t.Errorf("service %s depends on unknown service %s", s.Name, dep)
					continue
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if !hasHealth(ds) {
						t.Errorf("service %s waits for %s to be healthy, but %s has no health check", s.Name, dep, dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if ds.Restart != "" && ds.Restart != types.RestartPolicyNo {
						t.Errorf("service %s waits for %s to complete, but %s restarts (%s)", s.Name, dep, dep, ds.Restart)
					}
				default:
					t.Errorf("service %s depends on %s without a condition: say service_healthy or service_completed_successfully", s.Name, dep)
				}
			}
		}
		order := map[string][]string{ // service → what it must (transitively) wait for
			"kafka-setup": {"kafka"},
			"migrate":     {"clickhouse"},
			"sink":        {"kafka-setup", "migrate"},
			"producer":    slices.Sorted(maps.Values(stepService)),
		}
		for _, name := range stepService {
			order[name] = []string{"kafka-setup"}
		}
		for s, deps := range order {
			for _, d := range deps {
				if !dependsOn(p, s, d) {
					t.Errorf("service %s does not wait for %s", s, d)
				}
			}
		}
	})

	t.Run("no secrets in the file", func(t *testing.T) {
		for _, m := range credentialsRE.FindAllStringSubmatch(string(raw), -1) {
			if !strings.HasPrefix(m[1], "${") {
				t.Errorf("credentials written into docker-compose.yml (%s): interpolate them from the environment, e.g. ${CLICKHOUSE_PASSWORD}", m[0])
			}
		}
		for _, s := range p.Services {
			for _, a := range append(append([]string{}, s.Entrypoint...), s.Command...) {
				if credentialsRE.MatchString(a) || strings.Contains(strings.ToLower(a), "password") {
					t.Errorf("service %s: a secret in the command line (visible in ps and docker inspect): pass it in the environment", s.Name)
				}
			}
		}
	})

	t.Run("ports documented", func(t *testing.T) {
		var comments strings.Builder
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				comments.WriteString(line + "\n")
			}
		}
		for _, s := range p.Services {
			for _, pc := range s.Ports {
				if !regexp.MustCompile(`#\s+` + regexp.QuoteMeta(pc.Published) + `\s`).MatchString(comments.String()) {
					t.Errorf("service %s publishes port %s, which the file's header does not document", s.Name, pc.Published)
				}
			}
		}
	})
}

// dependsOn reports whether service from waits for to, directly or not.
func dependsOn(p *types.Project, from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(s string) bool {
		if seen[s] {
			return false
		}
		seen[s] = true
		svc, err := p.GetService(s)
		if err != nil {
			return false
		}
		for d := range svc.DependsOn {
			if d == to || walk(d) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// TestDockerfile checks what can be checked without building: a build
// stage with cgo off, a final stage that runs the binary as a numeric
// non-root user, and the workflow where deployments expect it.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from  string
		lines []string
	}
	var stages []*stage
	var cont string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			stages = append(stages, &stage{from: rest})
		default:
			if len(stages) > 0 {
				stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a small final stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s, want golang:…", build.from)
	}
	joined := strings.Join(build.lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "-s -w", "./cmd/flexiflow"} {
		if !strings.Contains(joined, want) {
			t.Errorf("build stage does not build with %q", want)
		}
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", final.from)
	}
	var user, entry string
	copiedBinary, copiedWorkflow := false, false
	for _, l := range final.lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entry = rest
		case "COPY":
			f := strings.Fields(rest)
			if strings.HasPrefix(rest, "--from=") && f[len(f)-1] == imageEntry {
				copiedBinary = true
			}
			if f[len(f)-1] == imageWorkflow && f[len(f)-2] == strings.TrimPrefix(demoWorkflow, "../") {
				copiedWorkflow = true
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("final stage USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot cannot check names)", user)
	}
	if entry != `["`+imageEntry+`"]` {
		t.Errorf("ENTRYPOINT %s, want [%q]", entry, imageEntry)
	}
	if !copiedBinary {
		t.Errorf("final stage does not copy the binary from the build stage to %s", imageEntry)
	}
	if !copiedWorkflow {
		t.Errorf("final stage does not carry the demo workflow at %s", imageWorkflow)
	}
	ignore, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatalf(".dockerignore: %v (without it the build context carries .git and .cache)", err)
	}
	for _, want := range []string{".git", ".cache"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
