#!/usr/bin/env bash
# make down: stop every process the stack started; data stays in .local
# (remove it with 'make clean').
source "$(dirname "$0")/env.sh"
for pidfile in "$RUN"/orderflow-*.pid; do
  [[ -e $pidfile ]] || continue
  stop_pid "$(basename "$pidfile" .pid)" "$pidfile"
done
"$ROOT/scripts/clickhouse.sh" down
"$ROOT/scripts/kafka.sh" down
"$ROOT/scripts/pg.sh" down
say "stack down"
