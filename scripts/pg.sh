#!/usr/bin/env bash
# PostgreSQL from Debian's packages in .local/pg: its own data directory, port
# 55432 on 127.0.0.1, wal_level=logical. Usage: pg.sh up|down|status
source "$(dirname "$0")/env.sh"
DATA="$STACK/pg/data"
LOG="$LOGS/postgres.log"

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d ]] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  echo "$d"
}

# PostgreSQL refuses to run as root: as root we run it as the 'postgres' user.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ready() { as_pg "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

up() {
  need_pkgs postgresql postgresql-contrib
  local bin; bin=$(pg_bin)
  if ready && [[ -f $DATA/postmaster.pid ]]; then say "postgres already running on 127.0.0.1:$PG_PORT"; return 0; fi
  mkdir -p "$STACK/pg"
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$STACK/pg"
    runuser -u postgres -- test -x "$STACK/pg" || die "user postgres cannot reach $STACK/pg; make its parent directories world-searchable (chmod o+x)"
    touch "$LOG"; chown postgres: "$LOG"
  fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    say "initdb $DATA"
    local pw; pw=$(mktemp); echo orderflow >"$pw"; chmod 644 "$pw"
    as_pg "$bin/initdb" -D "$DATA" -U orderflow --pwfile="$pw" -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 \
      || { rm -f "$pw"; die "initdb failed; see $LOG"; }
    rm -f "$pw"
    cat >>"$DATA/postgresql.conf" <<CONF
# orderflow local stack
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$STACK/pg'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 300
wal_sender_timeout = 60s
shared_buffers = 512MB
max_wal_size = 4GB
logical_decoding_work_mem = 64MB
fsync = on
CONF
    cat >"$DATA/pg_hba.conf" <<CONF
local   all          all                      scram-sha-256
host    all          all         127.0.0.1/32 scram-sha-256
host    replication  all         127.0.0.1/32 scram-sha-256
CONF
  fi
  say "starting postgres on 127.0.0.1:$PG_PORT (log $LOG)"
  as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null || { tail -n 30 "$LOG" >&2; die "postgres did not start; see $LOG"; }
  wait_for postgres 60 "$LOG" ready
  # The orderflow database (initdb made the orderflow superuser).
  PGPASSWORD=orderflow psql -q -h 127.0.0.1 -p "$PG_PORT" -U orderflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='orderflow'" | grep -q 1 \
    || PGPASSWORD=orderflow psql -q -h 127.0.0.1 -p "$PG_PORT" -U orderflow -d postgres -c "CREATE DATABASE orderflow" >/dev/null
  say "postgres ready: $ORDERFLOW_PG_URL"
}

down() {
  [[ -f $DATA/PG_VERSION ]] || return 0
  if [[ -f $DATA/postmaster.pid ]]; then
    say "stopping postgres"
    as_pg "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  up) up ;; down) down ;; status) ready && echo "postgres: up" || echo "postgres: down" ;;
  *) die "usage: $0 up|down|status" ;;
esac
