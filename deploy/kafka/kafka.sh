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
#
# Opt-in secure mode, KAFKA_SECURITY=sasl_ssl: the client listener on
# KAFKA_PORT is SASL_SSL (TLS, then SCRAM-SHA-512 or SCRAM-SHA-256). A test
# CA and the broker's certificate (for 127.0.0.1 and localhost) are made
# with openssl in <instance>/secure/ (clients trust secure/ca.pem), and the
# SCRAM user KAFKA_SCRAM_USER (default flexiflow) with password
# KAFKA_SCRAM_PASSWORD (default: generated into secure/client-password) is
# created when the storage is formatted, so change either only after
# `reset`. Use it with its own KAFKA_INSTANCE and ports.
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
security="${KAFKA_SECURITY:-plaintext}"
secure="$run/secure"

script=kafka.sh
# shellcheck source=../lib.sh
. "$here/../lib.sh"

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

# storage_props prints the settings every mode shares: one node, small
# internal topics, no rebalance delay (tests start consumers often).
storage_props() {
  cat <<PROPS
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

# secure_setup makes the test CA, the broker's key and certificate, and the
# SCRAM passwords (kept between runs, so a restarted broker keeps its users).
secure_setup() {
  need openssl openssl
  mkdir -p "$secure"
  chmod 700 "$secure"
  if [ ! -f "$secure/broker.pem" ]; then
    (
      cd "$secure"
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 365 -subj "/CN=FlexiFlow test CA" 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=127.0.0.1" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > broker.ext
      openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.crt -days 365 -extfile broker.ext 2>/dev/null
      openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.p8
      cat broker.p8 broker.crt ca.pem > broker.pem
      rm -f broker.csr broker.ext broker.key broker.p8
    )
  fi
  [ -f "$secure/admin-password" ] || openssl rand -hex 16 > "$secure/admin-password"
  if [ -n "${KAFKA_SCRAM_PASSWORD:-}" ]; then
    printf '%s' "$KAFKA_SCRAM_PASSWORD" > "$secure/client-password"
  elif [ ! -f "$secure/client-password" ]; then
    openssl rand -hex 16 > "$secure/client-password"
  fi
  chmod 600 "$secure"/*
}

scram_user="${KAFKA_SCRAM_USER:-flexiflow}"

# secure_props prints the SASL_SSL listener's settings: SCRAM for clients
# and for the broker itself (as admin), TLS with the test certificate.
secure_props() {
  local admin; admin="$(tr -d '\n' < "$secure/admin-password")"
  cat <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
ssl.keystore.type=PEM
ssl.keystore.location=$secure/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$secure/ca.pem
ssl.client.auth=none
PROPS
}

# config writes server.properties: one node that is broker and controller,
# the client listener on KAFKA_PORT (PLAINTEXT, or SASL_SSL in secure mode),
# the controller's on KAFKA_CONTROLLER_PORT, and the storage settings. Only
# its owner may read it (in secure mode it holds the admin password).
config() {
  local proto=PLAINTEXT
  if [ "$security" = sasl_ssl ]; then proto=SASL_SSL; fi
  {
    cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$proto://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$proto://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=$proto:$proto,CONTROLLER:PLAINTEXT
inter.broker.listener.name=$proto
PROPS
    if [ "$security" = sasl_ssl ]; then secure_props; fi
    storage_props
  } > "$run/server.properties"
  chmod 600 "$run/server.properties"
}

# scram_args are the storage tool's --add-scram arguments: the admin the
# broker uses for itself and the client user, under both mechanisms.
scram_args() {
  local admin client
  admin="$(tr -d '\n' < "$secure/admin-password")"
  client="$(cat "$secure/client-password")"
  printf '%s\n' --add-scram "SCRAM-SHA-512=[name=admin,password=$admin]" \
    --add-scram "SCRAM-SHA-512=[name=$scram_user,password=$client]" \
    --add-scram "SCRAM-SHA-256=[name=$scram_user,password=$client]"
}

# jvm runs a class from the resolved jars: the storage tool and the broker.
jvm=(java -Xmx"$heap" -Xms"$heap" -XX:+UseG1GC -Dlog4j.configuration="file:$here/log4j.properties" -cp "$cache/libs/*")

up() {
  need java openjdk-17-jre-headless
  if running; then echo "kafka.sh: broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return; fi
  resolve
  mkdir -p "$run"
  case "$security" in
    plaintext) ;;
    sasl_ssl) secure_setup ;;
    *) echo "kafka.sh: KAFKA_SECURITY=$security: use plaintext (the default) or sasl_ssl" >&2; exit 2 ;;
  esac
  config
  if [ ! -f "$run/data/meta.properties" ]; then
    local scram=()
    if [ "$security" = sasl_ssl ]; then mapfile -t scram < <(scram_args); fi
    "${jvm[@]}" kafka.tools.StorageTool format -t "$("${jvm[@]}" kafka.tools.StorageTool random-uuid)" -c "$run/server.properties" "${scram[@]}" >/dev/null
  fi
  local start=$SECONDS
  nohup "${jvm[@]}" kafka.Kafka "$run/server.properties" > "$log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! running; then echo "kafka.sh: the broker exited during start; last lines of $log:" >&2; tail -20 "$log" >&2; exit 1; fi
    if grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$log" 2>/dev/null \
       && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka.sh: Apache Kafka ready on 127.0.0.1:$port after $((SECONDS - start))s (pid $(cat "$pidfile"), log $log)"
      if [ "$security" = sasl_ssl ]; then
        echo "kafka.sh: listener SASL_SSL (SCRAM-SHA-512, SCRAM-SHA-256), user $scram_user, password in $secure/client-password, CA $secure/ca.pem"
      fi
      return
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not become ready within 60s; last lines of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

down() { stop broker 30; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  reset) down; rm -rf "$run/data" ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|reset|status" >&2; exit 2 ;;
esac
