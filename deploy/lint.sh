#!/usr/bin/env bash
# golangci-lint, pinned, on the root module (configuration: ../.golangci.yml).
# Installs the pinned version into .cache/bin (git-ignored) with `go install`
# from the Go module proxy, and skips that when the binary there already is
# that version built by the current Go toolchain (a linter built by an older
# Go cannot load code for a newer one). Arguments go to `golangci-lint run`
# (default ./...).
#
#   deploy/lint.sh                 lint the root module
#   deploy/lint.sh ./bandit/...    lint some packages
#
# Environment: GO (default go), GOLANGCI_LINT_VERSION (default v2.15.0).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
go="${GO:-go}"
version="${GOLANGCI_LINT_VERSION:-v2.15.0}"
bin="$root/.cache/bin"
lint="$bin/golangci-lint"

installed() {
	[ -x "$lint" ] || return 1
	[ "$("$lint" version --short 2>/dev/null)" = "${version#v}" ] || return 1
	[ "$("$go" version "$lint" 2>/dev/null | awk '{print $2}')" = "$("$go" env GOVERSION)" ]
}

if ! installed; then
	echo "installing golangci-lint $version into .cache/bin" >&2
	mkdir -p "$bin"
	GOBIN="$bin" "$go" install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
	installed || { echo "lint.sh: $lint is not golangci-lint $version after installing" >&2; exit 1; }
fi

cd "$root"
if [ $# -eq 0 ]; then set -- ./...; fi
exec "$lint" run "$@"
