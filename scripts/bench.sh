#!/usr/bin/env bash
# make bench: the whole pipeline's numbers on this machine, every service
# co-located. Runs `orderflow bench` (sustained open-loop rates with a
# freshness probe polling ClickHouse, backlog drain, peak RSS) and writes
# bench/results/<time>.{json,md} (latest.* too). Settings: BENCH_RATES
# (orders/s, comma-separated), BENCH_PHASE (per rate), BENCH_DRAIN (changes).
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/up.sh"
cd "$ROOT"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
say "orderflow bench (rates ${BENCH_RATES:-500,1500,4000} orders/s, ${BENCH_PHASE:-30s} each, drain ${BENCH_DRAIN:-1000000} changes)"
"$STACK/bin/orderflow" bench -commit "$commit" -rates "${BENCH_RATES:-500,1500,4000}" -phase "${BENCH_PHASE:-30s}" \
  -drain-changes "${BENCH_DRAIN:-1000000}" -out "$ROOT/bench/results" -work-dir "$STACK/bench"
