# Shell helpers the service scripts (kafka.sh, mlserver.sh, registry.sh)
# share. Source it after setting $script (the name messages start with)
# and $pidfile (where the service's process id is kept).

say() { echo "$script: $*"; }
die() { echo "$script: $*" >&2; exit 1; }

# need CMD DEBIAN_PACKAGE: installs the package when CMD is missing and this
# is a Debian machine we may install on (root); otherwise says what to do.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "'$1' is missing; installing Debian package $2"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 && return
  fi
  die "'$1' is not installed; install it (Debian: apt-get install -y $2) and run again"
}

# running: the process in $pidfile is alive.
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# stop WHAT SECONDS: stops the process in $pidfile (SIGTERM, then SIGKILL
# after SECONDS) and says so; says WHAT is not running when it is not.
stop() {
  if ! running; then say "no $1 running"; rm -f "$pidfile"; return; fi
  local pid; pid="$(cat "$pidfile")"
  kill "$pid"
  for _ in $(seq 1 $(( $2 * 4 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  say "$1 stopped"
}
