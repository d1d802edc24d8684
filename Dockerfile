# syntax=docker/dockerfile:1
#
# One small static image for every FlexiFlow role: a workflow stage, the
# trace sink, the ClickHouse migration, the demo producer. The role is the
# subcommand, e.g.
#
#   docker build -t flexiflow:dev --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm flexiflow:dev stage --workflow /etc/flexiflow/workflow.yaml --step denoise --brokers kafka:9092
#
# The image carries the demo workflow at /etc/flexiflow/workflow.yaml; mount
# your own file over it (compose) or from a ConfigMap (Kubernetes).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# CGO off: a static binary that needs no libc, so it runs on distroless/static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/flexiflow ./cmd/flexiflow \
 && /out/flexiflow version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flexiflow /flexiflow
COPY examples/demo/digits.yaml /etc/flexiflow/workflow.yaml
# distroless's "nonroot" user, numeric so Kubernetes can check runAsNonRoot.
USER 65532:65532
# --metrics-addr :9100 serves /metrics, /healthz and /readyz here.
EXPOSE 9100
ENTRYPOINT ["/flexiflow"]
CMD ["--help"]
