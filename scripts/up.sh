#!/usr/bin/env bash
# make up: build orderflow, then start PostgreSQL, Kafka and the ClickHouse
# server and fetch libchdb.so. Idempotent: a healthy stack is left alone.
source "$(dirname "$0")/env.sh"
start=$SECONDS
"$ROOT/scripts/build.sh"
"$ROOT/scripts/pg.sh" up
"$ROOT/scripts/kafka.sh" up
"$ROOT/scripts/clickhouse.sh" up
"$ROOT/scripts/chdb.sh"
"$STACK/bin/orderflow" doctor --wait 30s
say "stack up in $((SECONDS - start))s; stop it with 'make down'"
