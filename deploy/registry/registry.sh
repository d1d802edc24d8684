#!/usr/bin/env bash
# A real Confluent-compatible Schema Registry for tests and local use:
# Apicurio Registry (its ccompat API speaks Confluent's protocol), built
# from Maven Central by deploy/registry/pom.xml into .cache/registry
# (git-ignored, kept between runs), storing schemas in memory. Idempotent:
# `up` on a running registry only reports it.
#
#   deploy/registry/registry.sh build   resolve and build (once)
#   deploy/registry/registry.sh up      build if needed, start on 127.0.0.1, wait until ready
#   deploy/registry/registry.sh down    stop it (its schemas are gone)
#   deploy/registry/registry.sh status  say whether it is running, and where
#   deploy/registry/registry.sh url     print the URL clients use
#
# Environment: REGISTRY_PORT (default 18085), REGISTRY_HEAP (256m),
# REGISTRY_INSTANCE (default "main": another name runs a separate
# registry, for tests that stop and start theirs without disturbing
# others). Clients use http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/registry"
build="$cache/build"
port="${REGISTRY_PORT:-18085}"
heap="${REGISTRY_HEAP:-256m}"
instance="${REGISTRY_INSTANCE:-main}"
run="$cache/$instance"
pidfile="$run/registry.pid"
log="$run/registry.log"
url="http://127.0.0.1:$port/apis/ccompat/v7"

script=registry.sh
# shellcheck source=../lib.sh
. "$here/../lib.sh"

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && grep -q "Listening on" "$log" 2>/dev/null; }

# The build is redone when the pom or the properties change.
stamp() { cat "$here/pom.xml" "$here/src/main/resources/application.properties" | sha1sum | cut -c1-12; }

do_build() {
  local want; want="$build/.built-$(stamp)"
  if [ -f "$want" ] && [ -f "$build/schema-registry-1-runner.jar" ]; then return; fi
  need mvn maven
  need java openjdk-17-jre-headless
  mkdir -p "$cache"
  say "building Apicurio Registry $(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$here/pom.xml") from Maven Central into $build (once; a few minutes)"
  if ! mvn -B -q -f "$here/pom.xml" package -DskipTests -DbuildDir="$build" > "$cache/mvn.log" 2>&1; then
    echo "registry.sh: the Maven build failed; last lines of $cache/mvn.log:" >&2
    tail -20 "$cache/mvn.log" >&2
    exit 1
  fi
  rm -f "$build"/.built-*
  touch "$want"
}

up() {
  if running; then say "already running at $url (pid $(cat "$pidfile"))"; return; fi
  do_build
  mkdir -p "$run"
  : > "$log"
  local start=$SECONDS
  nohup java -Xmx"$heap" -XX:+UseSerialGC -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.log.level=WARN -Dquarkus.log.category.\"io.quarkus\".level=INFO \
    -jar "$build/schema-registry-1-runner.jar" > "$log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 240); do
    if ! running; then echo "registry.sh: the registry exited during start; last lines of $log:" >&2; tail -20 "$log" >&2; exit 1; fi
    if ready; then say "Apicurio Registry ready at $url after $((SECONDS - start))s (pid $(cat "$pidfile"), log $log)"; return; fi
    sleep 0.25
  done
  echo "registry.sh: the registry did not become ready within 60s; last lines of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

down() { stop registry 10; }

case "${1:-}" in
  build) do_build ;;
  up) up ;;
  down) down ;;
  status) if running; then echo "running at $url (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi ;;
  url) echo "$url" ;;
  *) echo "usage: $0 build|up|down|status|url" >&2; exit 2 ;;
esac
