#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft) for tests and local use,
# resolved from Maven Central into .cache/kafka (git-ignored, kept between
# runs). Idempotent: `up` on a running broker only reports it.
#
#   deploy/kafka/kafka.sh up      resolve jars if needed, format storage, start, wait until ready
#   deploy/kafka/kafka.sh down    stop the broker (its data is kept)
#   deploy/kafka/kafka.sh reset   stop and delete the data
#   deploy/kafka/kafka.sh status  say whether it is running
#
# Environment: KAFKA_PORT (default 19092), KAFKA_CONTROLLER_PORT (19093),
# KAFKA_HEAP (512m), KAFKA_INSTANCE (default "main": a second instance name
# runs a separate broker with its own data, for tests that stop and start
# their broker without disturbing others). The broker listens on 127.0.0.1
# only.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/kafka"
port="${KAFKA_PORT:-19092}"
cport="${KAFKA_CONTROLLER_PORT:-19093}"
heap="${KAFKA_HEAP:-512m}"
instance="${KAFKA_INSTANCE:-main}"
run="$cache/$instance"
pidfile="$run/broker.pid"
log="$run/broker.log"

# need CMD DEBIAN_PACKAGE: installs the package when CMD is missing and this
# is a Debian machine we may install on (root); otherwise says what to do.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "kafka.sh: '$1' is missing; installing Debian package $2"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 && return
  fi
  echo "kafka.sh: '$1' is not installed; install it (Debian: apt-get install -y $2) and run again" >&2
  exit 1
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

resolve() {
  if [ -f "$cache/libs/.complete" ]; then return; fi
  need mvn maven
  echo "kafka.sh: resolving Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml") from Maven Central into $cache/libs"
  mkdir -p "$cache/libs"
  if ! mvn -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/libs" -DincludeScope=runtime > "$cache/mvn.log" 2>&1; then
    echo "kafka.sh: Maven could not resolve Kafka; last lines of $cache/mvn.log:" >&2
    tail -20 "$cache/mvn.log" >&2
    exit 1
  fi
  touch "$cache/libs/.complete"
}

config() {
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
}

java_cmd() {
  java -Xmx"$heap" -Xms"$heap" -XX:+UseG1GC -Dlog4j.configuration="file:$here/log4j.properties" -cp "$cache/libs/*" "$@"
}

up() {
  need java openjdk-17-jre-headless
  if running; then echo "kafka.sh: broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return; fi
  resolve
  mkdir -p "$run"
  config
  if [ ! -f "$run/data/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format -t "$(java_cmd kafka.tools.StorageTool random-uuid)" -c "$run/server.properties" >/dev/null
  fi
  local start=$SECONDS
  nohup java -Xmx"$heap" -Xms"$heap" -XX:+UseG1GC -Dlog4j.configuration="file:$here/log4j.properties" \
    -cp "$cache/libs/*" kafka.Kafka "$run/server.properties" > "$log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! running; then echo "kafka.sh: the broker exited during start; last lines of $log:" >&2; tail -20 "$log" >&2; exit 1; fi
    if grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$log" 2>/dev/null \
       && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka.sh: Apache Kafka ready on 127.0.0.1:$port after $((SECONDS - start))s (pid $(cat "$pidfile"), log $log)"
      return
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not become ready within 60s; last lines of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

down() {
  if ! running; then echo "kafka.sh: no broker running"; rm -f "$pidfile"; return; fi
  local pid; pid="$(cat "$pidfile")"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka.sh: broker stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  reset) down; rm -rf "$run/data" ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|reset|status" >&2; exit 2 ;;
esac
