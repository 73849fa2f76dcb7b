# Shared settings of the local stack; sourced by the other scripts.
# Everything lives under $STACK (ignored by git); heavy downloads under $CACHE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${ORDERFLOW_STACK_DIR:-$ROOT/.local}"
CACHE="$STACK/cache"
LOGS="$STACK/log"
RUN="$STACK/run"
mkdir -p "$CACHE" "$LOGS" "$RUN"

# Ports on 127.0.0.1; override all at once with ORDERFLOW_STACK_PORT_OFFSET
# (e.g. 100) to run a second stack beside the first.
off=${ORDERFLOW_STACK_PORT_OFFSET:-0}
if ! [[ $off =~ ^[0-9]+$ ]] || ((off > 6400)); then
  printf 'error: ORDERFLOW_STACK_PORT_OFFSET=%s: want a number from 0 to 6400 (the stack uses ports 55432..59093 plus the offset, at most 65535)\n' "$off" >&2
  exit 1
fi
PG_PORT=$((55432 + off))
KAFKA_PORT=$((59092 + off))
KAFKA_CONTROLLER_PORT=$((59093 + off))
CH_TCP_PORT=$((59000 + off))
CH_HTTP_PORT=$((58123 + off))
KAFKA_VERSION=4.1.1
CHDB_NPM_VERSION=26.5.3

export ORDERFLOW_PG_URL="${ORDERFLOW_PG_URL:-postgres://orderflow:orderflow@127.0.0.1:$PG_PORT/orderflow?sslmode=disable}"
export ORDERFLOW_KAFKA_BROKERS="${ORDERFLOW_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export ORDERFLOW_CLICKHOUSE_ADDR="${ORDERFLOW_CLICKHOUSE_ADDR:-127.0.0.1:$CH_TCP_PORT}"
export ORDERFLOW_CHDB_LIB="${ORDERFLOW_CHDB_LIB:-$CACHE/chdb/$CHDB_NPM_VERSION/libchdb.so}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open PORT: true when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME SECONDS LOGFILE CMD...: retry CMD until it succeeds or time runs out.
wait_for() {
  local name=$1 secs=$2 log=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "---- last lines of $log ----" >&2; tail -n 30 "$log" >&2 || true
      die "$name did not become ready within ${secs}s; see $log"
    fi
    sleep 0.5
  done
}

# pid_alive FILE: true when FILE holds the pid of a live process.
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME FILE: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local name=$1 file=$2
  if ! pid_alive "$file"; then rm -f "$file"; return 0; fi
  local pid; pid=$(cat "$file")
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

apt_updated=0
# need_pkgs PKG...: install the Debian packages that are missing.
need_pkgs() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  if ((apt_updated == 0)); then say "apt-get update"; apt-get update -qq; apt_updated=1; fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
