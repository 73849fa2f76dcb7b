#!/usr/bin/env bash
# make demo: the whole pipeline end to end on the local stack.
#  1. bring the stack up (PostgreSQL, Kafka, libchdb; installs what is missing)
#  2. start `orderflow run` (API + capture + transformer + report API, embedded
#     ClickHouse) on a fresh demo namespace: database orderflow_demo, topics
#     demo.*, slot demo, engine data in .local/demo/chdb
#  3. generate a realistic workload while showing the pipeline's progress
#  4. wait until ClickHouse has caught up, print reports, and check one report
#     against the same question asked of PostgreSQL
# The pipeline keeps running for exploration until `make down`.
source "$(dirname "$0")/env.sh"
CUSTOMERS=${DEMO_CUSTOMERS:-30000}
ORDERS=${DEMO_ORDERS:-200000}
ADDR=${DEMO_HTTP_ADDR:-127.0.0.1:8080}
BIN="$STACK/bin/orderflow"
PID="$RUN/orderflow-run.pid"
LOG="$LOGS/orderflow-run.log"
DEMO="$STACK/demo"
start=$SECONDS

"$ROOT/scripts/up.sh"

# A fresh demo namespace each time.
stop_pid orderflow-run "$PID"
PGURL_ADMIN=$ORDERFLOW_PG_URL
DEMO_DB=orderflow_demo
export ORDERFLOW_PG_URL="${PGURL_ADMIN/\/orderflow\?/\/$DEMO_DB?}"
export ORDERFLOW_PG_SLOT=demo ORDERFLOW_PG_PUBLICATION=demo ORDERFLOW_KAFKA_TOPIC_PREFIX=demo
export ORDERFLOW_TRANSFORM_GROUP=demo-transform ORDERFLOW_CHDB_PATH="$DEMO/chdb" ORDERFLOW_HTTP_ADDR=$ADDR
say "preparing a fresh demo namespace (database $DEMO_DB, topics demo.*, slot demo, $DEMO/chdb)"
psql_admin() { PGPASSWORD=orderflow psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U orderflow "$@"; }
psql_admin -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'demo' AND NOT active" >/dev/null
psql_admin -d postgres -c "DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE)" -c "CREATE DATABASE $DEMO_DB" >/dev/null
"$BIN" topics -delete >/dev/null
rm -rf "$DEMO"; mkdir -p "$DEMO"

say "starting orderflow run on http://$ADDR (log $LOG)"
nohup "$BIN" run -migrate >>"$LOG" 2>&1 &
echo $! >"$PID"
wait_for "orderflow run" 120 "$LOG" curl -fsS "http://$ADDR/readyz"

say "generating $ORDERS orders from $CUSTOMERS customers (seeded, with payments, shipping, cancellations, refunds, segment changes)"
"$BIN" load -seed 1 -customers "$CUSTOMERS" -orders "$ORDERS" -no-progress >"$DEMO/load.txt" 2>&1 &
loadpid=$!
"$BIN" status -url "http://$ADDR" -watch 3s &
statuspid=$!
wait $loadpid || { kill $statuspid; cat "$DEMO/load.txt"; die "the workload generator failed"; }
say "workload written:"; sed 's/^/    /' "$DEMO/load.txt"

# Caught up when ClickHouse's order facts match PostgreSQL's orders by status.
q_pg="SELECT status || ':' || count(*) FROM orders GROUP BY status ORDER BY status"
q_ch="SELECT concat(toString(status), ':', toString(count())) FROM customer_orders FINAL WHERE _is_deleted = 0 GROUP BY status ORDER BY status"
pg_state=$(psql_admin -d $DEMO_DB -tAc "$q_pg" | tr '\n' ' ')
deadline=$((SECONDS + 600))
until [[ $(curl -fsS -X POST "http://$ADDR/v1/sql?format=csv" --data-binary "$q_ch" | tail -n +2 | tr -d '"' | tr '\n' ' ') == "$pg_state" ]]; do
  ((SECONDS < deadline)) || { kill $statuspid; die "ClickHouse did not catch up within 10 minutes; see $LOG"; }
  sleep 1
done
kill $statuspid 2>/dev/null; wait $statuspid 2>/dev/null || true
say "ClickHouse has caught up: $pg_state"

from=$(psql_admin -d $DEMO_DB -tAc "SELECT min(placed_at)::date FROM orders")
to=$(psql_admin -d $DEMO_DB -tAc "SELECT max(placed_at)::date FROM orders")
report() {
  local name=$1 query=$2
  say "report $name ($query)"
  curl -fsS "http://$ADDR/v1/reports/$name?$query&format=table" || die "report $name failed; see $LOG"
  echo
}
report segment_performance "from=$from&to=$to"
report top_products "from=$from&to=$to"
report regional_revenue "from=$from&to=$to"
report fulfilment_time_by_segment "from=$from&to=$to"
report sales_by_month_segment "from=$(date -u -d "$to -3 months" +%F)&to=$to"

say "checking report daily_sales against PostgreSQL (the same question over the normalized tables)"
curl -fsS "http://$ADDR/v1/reports/daily_sales?from=$from&to=$to&format=csv" >"$DEMO/daily_sales.ch.csv"
mismatch=$(psql_admin -d $DEMO_DB -tA <<SQL
CREATE TEMP TABLE ch (day date, orders bigint, customers bigint, units bigint, revenue numeric);
\copy ch FROM '$DEMO/daily_sales.ch.csv' CSV HEADER
CREATE TEMP TABLE pg AS
SELECT d::date AS day, count(o.id) AS orders, count(DISTINCT o.customer_id) AS customers,
       coalesce(sum(i.units), 0)::bigint AS units, coalesce(sum(o.total), 0) AS revenue
FROM generate_series('$from'::date, '$to'::date, interval '1 day') d
LEFT JOIN orders o ON (o.placed_at AT TIME ZONE 'UTC')::date = d::date AND o.status NOT IN ('cancelled', 'refunded')
LEFT JOIN (SELECT order_id, sum(quantity) AS units FROM order_items GROUP BY order_id) i ON i.order_id = o.id
GROUP BY d;
SELECT count(*) FROM ((SELECT * FROM pg EXCEPT SELECT * FROM ch) UNION ALL (SELECT * FROM ch EXCEPT SELECT * FROM pg)) x;
SQL
)
days=$(($(wc -l <"$DEMO/daily_sales.ch.csv") - 1))
if [[ $mismatch == 0 ]]; then
  say "daily_sales matches PostgreSQL exactly on all $days days (orders, customers, units, revenue)"
else
  die "daily_sales differs from PostgreSQL on $mismatch rows; compare $DEMO/daily_sales.ch.csv with the SQL in scripts/demo.sh"
fi

cat <<TXT

Demo finished in $((SECONDS - start))s. orderflow keeps running (pid $(cat "$PID")); explore:
  reports:   curl http://$ADDR/v1/reports ; curl 'http://$ADDR/v1/reports/daily_sales?from=$from&to=$to&format=csv'
  SQL:       curl -X POST http://$ADDR/v1/sql --data-binary 'SELECT customer_segment, count() FROM customer_orders FINAL GROUP BY 1'
  commands:  curl http://$ADDR/openapi.json  (POST /v1/customers, /v1/orders, ...)
  progress:  $BIN status -url http://$ADDR -watch 2s ; metrics at http://$ADDR/metrics
  logs:      $LOG
  stop:      make down
TXT
