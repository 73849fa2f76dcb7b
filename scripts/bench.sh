#!/usr/bin/env bash
# make bench: the whole pipeline's numbers on this machine, every service
# co-located. Runs `orderflow bench` (sustained open-loop rates with a
# freshness probe polling ClickHouse, backlog drain, peak RSS) and writes
# bench/results/<time>.{json,md} (latest.* too).
# Settings: BENCH_RATES (orders/s, comma-separated; one order is about 6.5 row
# changes), BENCH_PHASE (per rate), BENCH_DRAIN (changes).
# BENCH_BATCH=1 also runs the batch benchmarks first and merges their figures:
# each report's latency on 10M orders (queries, ~10 min) and backfill fact
# rows/s at BENCH_BACKFILL_ORDERS orders (ingest/backfill, ~4 min at 1M), in
# direct mode (--direct) unless BENCH_BACKFILL_DIRECT=0 (through Kafka and
# the transformer, ~5 min at 1M).
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/up.sh"
cd "$ROOT"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$ROOT/bench/results"
extra=()
if [[ ${BENCH_BATCH:-0} == 1 ]]; then
  say "report latency on 10M orders (go test -bench BenchmarkReports ./queries)"
  go test -run '^$' -bench BenchmarkReports -benchtime 3x -timeout 60m ./queries | tee "$STACK/bench/reports.txt"
  extra+=("$STACK/bench/reports.txt")
  say "backfill of ${BENCH_BACKFILL_ORDERS:-1000000} orders, direct=${BENCH_BACKFILL_DIRECT:-1} (go test -bench BenchmarkBackfill ./ingest/backfill)"
  ORDERFLOW_BENCH_DIRECT=${BENCH_BACKFILL_DIRECT:-1} ORDERFLOW_BENCH_ORDERS=${BENCH_BACKFILL_ORDERS:-1000000} go test -run '^$' -bench BenchmarkBackfill -benchtime 1x -timeout 60m ./ingest/backfill \
    | tee "$STACK/bench/backfill.txt"
  extra+=("$STACK/bench/backfill.txt")
fi
say "orderflow bench (rates ${BENCH_RATES:-1000,2500} orders/s, ${BENCH_PHASE:-30s} each, drain ${BENCH_DRAIN:-1000000} changes)"
"$STACK/bin/orderflow" bench -commit "$commit" -rates "${BENCH_RATES:-1000,2500}" -phase "${BENCH_PHASE:-30s}" \
  -drain-changes "${BENCH_DRAIN:-1000000}" -out "$ROOT/bench/results" -work-dir "$STACK/bench" \
  -extra "$(IFS=,; echo "${extra[*]}")"
