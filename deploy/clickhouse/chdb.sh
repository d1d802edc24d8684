#!/usr/bin/env bash
# chDB, the ClickHouse engine in process, for the tests that run every DDL
# statement and query FlexiFlow ships (sinks/clickhouse) on real trace rows.
# Installs the pinned PyPI package into a virtualenv at .cache/chdb/venv
# (git-ignored, reused between runs). Idempotent and quiet: prints one line
# saying where the interpreter is, or what is missing and how to fix it.
#
#   deploy/clickhouse/chdb.sh           install if needed, print the python path
#   deploy/clickhouse/chdb.sh python    print the python path only (exit 1 if not installed)
#
# Tests read the interpreter from FLEXIFLOW_CHDB_PYTHON, defaulting to
# .cache/chdb/venv/bin/python.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.cache/chdb/venv"
py="$venv/bin/python"
version="4.4.0"

installed() { [ -x "$py" ] && "$py" -c "import chdb, sys; sys.exit(0 if chdb.__version__ == '$version' else 1)" >/dev/null 2>&1; }

if [ "${1:-}" = python ]; then
  installed || { echo "chdb.sh: chDB $version is not installed; run: bash deploy/clickhouse/chdb.sh" >&2; exit 1; }
  echo "$py"; exit 0
fi

if installed; then
  echo "chdb.sh: chDB $version ready: FLEXIFLOW_CHDB_PYTHON=$py"
  exit 0
fi

base="${PYTHON:-python3}"
if ! command -v "$base" >/dev/null 2>&1; then
  echo "chdb.sh: '$base' is not installed; install Python 3.9 or newer (Debian: apt-get install -y python3 python3-venv) and run again" >&2
  exit 1
fi
if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "chdb.sh: $base cannot create virtualenvs; install its venv module (Debian: apt-get install -y python3-venv) and run again" >&2
  exit 1
fi
mkdir -p "$root/.cache/chdb"
log="$root/.cache/chdb/pip.log"
if [ ! -x "$py" ]; then
  "$base" -m venv "$venv" > "$log" 2>&1 || { echo "chdb.sh: creating $venv failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }
fi
if ! "$py" -m pip install -q "chdb==$version" >> "$log" 2>&1; then
  echo "chdb.sh: pip could not install chdb==$version (is the package index reachable?); last lines of $log:" >&2
  tail -15 "$log" >&2
  exit 1
fi
installed || { echo "chdb.sh: chdb==$version installed but does not import; see $log" >&2; exit 1; }
echo "chdb.sh: chDB $version ready: FLEXIFLOW_CHDB_PYTHON=$py"
