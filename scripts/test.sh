#!/usr/bin/env bash
# make test: bring the local stack up (no-op when healthy), then run every Go
# test with the race detector against it. Extra arguments go to `go test`.
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/up.sh"
"$ROOT/scripts/lint.sh"
say "go test -race ./... (integration tests use the stack at $ORDERFLOW_PG_URL, $ORDERFLOW_KAFKA_BROKERS, $ORDERFLOW_CLICKHOUSE_ADDR)"
cd "$ROOT"
go test -race -count=1 -timeout 40m "$@" ./... 2>&1 | tee "$LOGS/go-test.log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^(ok|FAIL|---)' "$LOGS/go-test.log" | awk '/^ok/{p++} /^FAIL\t/{f++} END{printf "%d packages passed, %d failed", p, f}')
say "$summary (full log: $LOGS/go-test.log)"
exit "$rc"
