#!/usr/bin/env bash
# A real Open Inference Protocol ("KServe V2") model server for tests and
# local use: MLServer with its scikit-learn runtime, installed from PyPI into
# .cache/mlserver/venv (git-ignored, kept between runs), serving models that
# deploy/mlserver/train.py trains on scikit-learn's bundled digits data set
# (the same 8x8 images, pixels 0..16, as the demo). Idempotent: `up` on a
# running server only reports it.
#
#   deploy/mlserver/mlserver.sh install  create the venv and install the pinned packages
#   deploy/mlserver/mlserver.sh train    install, then train and save the models (once)
#   deploy/mlserver/mlserver.sh up       install, train, start on 127.0.0.1, wait until ready
#   deploy/mlserver/mlserver.sh down     stop the server
#   deploy/mlserver/mlserver.sh status   say whether it is running, and where
#
# Environment: MLSERVER_HTTP_PORT (default 18080), MLSERVER_GRPC_PORT (18081),
# MLSERVER_METRICS_PORT (18082), MLSERVER_PYTHON (python3, must be 3.9-3.12).
# The server listens on 127.0.0.1 only.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/mlserver"
venv="$cache/venv"
repo="$cache/models"
run="$cache/run"
pidfile="$run/mlserver.pid"
log="$run/mlserver.log"
http_port="${MLSERVER_HTTP_PORT:-18080}"
grpc_port="${MLSERVER_GRPC_PORT:-18081}"
metrics_port="${MLSERVER_METRICS_PORT:-18082}"
python="${MLSERVER_PYTHON:-python3}"

script=mlserver.sh
# shellcheck source=../lib.sh
. "$here/../lib.sh"

ready() {
  local url="http://127.0.0.1:$http_port/v2/health/ready"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
  else
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" >/dev/null 2>&1
  fi
}

install() {
  local stamp="$venv/.installed-$(sha1sum "$here/requirements.txt" | cut -c1-12)"
  if [ -f "$stamp" ]; then return; fi
  command -v "$python" >/dev/null 2>&1 \
    || die "'$python' is not installed; install Python 3.9-3.12 (Debian: apt-get install -y python3 python3-venv) or set MLSERVER_PYTHON, and run again"
  "$python" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)' \
    || die "MLServer 1.7 needs Python 3.9-3.12 but '$python' is $("$python" --version 2>&1); set MLSERVER_PYTHON to one that fits"
  "$python" -c 'import venv, ensurepip' 2>/dev/null \
    || die "'$python' cannot create virtual environments; install its venv module (Debian: apt-get install -y python3-venv) and run again"
  mkdir -p "$cache"
  if [ ! -x "$venv/bin/pip" ]; then
    say "creating a virtual environment in $venv"
    "$python" -m venv "$venv"
  fi
  say "installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')(log: $cache/pip.log)"
  if ! "$venv/bin/pip" install --disable-pip-version-check -q -r "$here/requirements.txt" > "$cache/pip.log" 2>&1; then
    tail -20 "$cache/pip.log" >&2
    die "pip could not install the pinned packages; see $cache/pip.log"
  fi
  rm -f "$venv"/.installed-*
  touch "$stamp"
}

train() {
  install
  local stamp="$repo/.trained-$(cat "$here/train.py" "$here/faults.py" | sha1sum | cut -c1-12)"
  if [ -f "$stamp" ]; then return; fi
  say "training the digits models into $repo"
  rm -rf "$repo"
  mkdir -p "$repo"
  "$venv/bin/python" "$here/train.py" --out "$repo"
  touch "$stamp"
}

settings() {
  mkdir -p "$run"
  cat > "$repo/settings.json" <<JSON
{
  "debug": false,
  "host": "127.0.0.1",
  "http_port": $http_port,
  "grpc_port": $grpc_port,
  "metrics_port": $metrics_port,
  "parallel_workers": 0,
  "load_models_at_startup": true,
  "metrics_dir": "$run/metrics",
  "environments_dir": "$run/envs"
}
JSON
}

up() {
  if running; then
    say "MLServer already running: REST http://127.0.0.1:$http_port, gRPC 127.0.0.1:$grpc_port (pid $(cat "$pidfile"))"
    return
  fi
  if ready; then die "port $http_port already answers /v2/health/ready but not from a server this script started; stop it or set MLSERVER_HTTP_PORT"; fi
  train
  settings
  local start=$SECONDS
  # faults.py (the fault tests' models) is imported from this directory.
  cd "$run"
  PYTHONPATH="$here" nohup "$venv/bin/mlserver" start "$repo" > "$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  cd "$root"
  for _ in $(seq 1 240); do
    if ! running; then tail -30 "$log" >&2; die "MLServer exited during start; log: $log"; fi
    if ready; then
      say "MLServer ready after $((SECONDS - start))s: REST http://127.0.0.1:$http_port, gRPC 127.0.0.1:$grpc_port (pid $(cat "$pidfile"), log $log)"
      return
    fi
    sleep 0.5
  done
  tail -30 "$log" >&2
  die "MLServer did not become ready within 120s; log: $log"
}

down() { stop MLServer 10; }

status() {
  if running; then
    if ready; then
      say "running and ready: REST http://127.0.0.1:$http_port, gRPC 127.0.0.1:$grpc_port (pid $(cat "$pidfile"))"
    else
      say "running (pid $(cat "$pidfile")) but not ready on http://127.0.0.1:$http_port"
      exit 1
    fi
  else
    say "not running"
    exit 1
  fi
}

case "${1:-}" in
  install) install; say "installed in $venv" ;;
  train) train; say "models in $repo" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
