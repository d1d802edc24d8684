# FlexiFlow: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := bash
GO    ?= go
BIN   := bin/flexiflow
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

KAFKA := deploy/kafka/kafka.sh
MLSERVER := deploy/mlserver/mlserver.sh
CHDB := deploy/clickhouse/chdb.sh
REGISTRY := deploy/registry/registry.sh
KAFKA_BROKERS ?= 127.0.0.1:19092

FUZZTIME ?= 15s

.PHONY: build demo docs test vet lint fuzz fmt bench clean kafka-up kafka-down mlserver-up mlserver-down registry-up registry-down chdb image deploy-check

build: ## build the one binary into bin/flexiflow
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/flexiflow

demo: ## run the built-in workflow on the embedded broker
	$(GO) run ./cmd/flexiflow demo

# deploy/ is its own module (its tests need Kubernetes, kustomize and
# compose libraries the binary does not): vet both.
vet:
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

docs: ## regenerate the workflow reference (docs/reference/workflow.md) from the code
	$(GO) run ./cmd/flexiflow reference > docs/reference/workflow.md

# golangci-lint (.golangci.yml) on the root module: deploy/lint.sh installs
# the pinned version into .cache/bin unless it is already there.
lint: ## golangci-lint, pinned, on the root module
	@GO=$(GO) bash deploy/lint.sh

# Each fuzz target for a bounded time (FUZZTIME); an input that fails is
# written under the package's testdata/fuzz and fails every later go test.
fuzz: ## fuzz the batch decoder and the workflow loader
	$(GO) test -run '^$$' -fuzz '^FuzzBatchDecode$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./stages/workflow/

fmt:
	gofmt -w $$(git ls-files '*.go')

kafka-up: ## start the real Apache Kafka broker tests use (idempotent)
	@bash $(KAFKA) up

kafka-down:
	@bash $(KAFKA) down

chdb: ## install chDB (the ClickHouse engine) for the trace-schema tests
	@bash $(CHDB)

mlserver-up: ## start the real model server the served-model tests use (idempotent)
	@bash $(MLSERVER) up

mlserver-down:
	@bash $(MLSERVER) down

registry-up: ## start the real Schema Registry (Apicurio, built from Maven Central) the confluent-avro tests use (idempotent)
	@bash $(REGISTRY) up

registry-down:
	@bash $(REGISTRY) down

image: ## build the container image (needs a Docker engine)
	docker build -t flexiflow:$(VERSION) --build-arg VERSION=$(VERSION) .

deploy-check: ## compose, Dockerfile and Kubernetes checks (no Docker or cluster needed)
	cd deploy && $(GO) test -count=1 -run 'TestCompose|TestDockerfile|TestKubernetes|TestKustomize' ./...

# The test suite: vet, lint, fuzz, then every package's tests against real components:
# the embedded broker always, a real Apache Kafka broker, a real MLServer and a
# real Schema Registry (Apicurio's Confluent API) (each started here if it is
# not running, and stopped again afterwards), and
# the ClickHouse engine (chDB, installed into .cache once); then the deploy
# module's tests (deploy/ has its own go.mod). Prints go test's package lines,
# any failure in full, and a final "N passed, N failed, N skipped" over both
# modules; fails if either module's tests fail. The plot tests run once more
# with -tags plot, the build that draws bench bandit's PNGs.
test: vet lint fuzz
	@mkdir -p .cache
	@bash $(CHDB) || [ "$$CI" != true ] || exit 1
	@set -o pipefail; \
	if bash $(KAFKA) status >/dev/null 2>&1; then started=; else bash $(KAFKA) up || exit 1; started=1; fi; \
	if bash $(MLSERVER) status >/dev/null 2>&1; then mls_started=; else bash $(MLSERVER) up || [ "$$CI" != true ] || exit 1; mls_started=1; fi; \
	if bash $(REGISTRY) status >/dev/null 2>&1; then reg_started=; else bash $(REGISTRY) up || [ "$$CI" != true ] || exit 1; reg_started=1; fi; \
	if bash $(REGISTRY) status >/dev/null 2>&1; then export FLEXIFLOW_REGISTRY_URL=$$(bash $(REGISTRY) url); fi; \
	( FLEXIFLOW_CHDB_PYTHON=$(CURDIR)/.cache/chdb/venv/bin/python FLEXIFLOW_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -count=1 -v -timeout 20m ./... 2>&1; root=$$?; \
	  $(GO) test -count=1 -v -tags plot -run 'TestWriteSeries' ./bandit/sim/ 2>&1 || root=1; \
	  cd deploy && $(GO) test -count=1 -v -timeout 10m ./... 2>&1; deploy=$$?; \
	  [ $$root -ne 0 ] && exit $$root; exit $$deploy ) | tee .cache/test.log \
	  | grep -E '^(ok|FAIL|---|panic:|\?)|^\s+--- (FAIL|SKIP)|_test\.go:[0-9]+:' ; \
	status=$${PIPESTATUS[0]}; \
	passed=$$(grep -cE '^\s*--- PASS' .cache/test.log); \
	failed=$$(grep -cE '^\s*--- FAIL' .cache/test.log); \
	skipped=$$(grep -cE '^\s*--- SKIP' .cache/test.log); \
	if [ -n "$$started" ]; then bash $(KAFKA) down >/dev/null; fi; \
	if [ -n "$$mls_started" ]; then bash $(MLSERVER) down >/dev/null; fi; \
	if [ -n "$$reg_started" ]; then bash $(REGISTRY) down >/dev/null; fi; \
	echo "$$passed passed, $$failed failed, $$skipped skipped"; \
	if [ "$$status" -ne 0 ] && [ "$$failed" -eq 0 ]; then \
	  echo "no test failed, but a package did not build or stopped before its tests (FAIL lines above; all output in .cache/test.log)"; fi; \
	exit $$status

bench: ## micro-benchmarks with allocation counts
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin .cache
