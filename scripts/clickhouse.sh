#!/usr/bin/env bash
# Debian's clickhouse-server (18.16.1, the only server packaged here) in
# .local/clickhouse on 127.0.0.1:59000 (native) and :58123 (HTTP). It is used
# to test the server sink's wire path; DDL and report SQL are validated on the
# current engine through chDB. Usage: clickhouse.sh up|down|status
source "$(dirname "$0")/env.sh"
DIR="$STACK/clickhouse"
LOG="$LOGS/clickhouse-server.log"
PID="$RUN/clickhouse-server.pid"

ready() { curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" | grep -q Ok; }

up() {
  need_pkgs clickhouse-server clickhouse-client curl
  if pid_alive "$PID" && ready; then say "clickhouse-server already running on 127.0.0.1:$CH_TCP_PORT"; return 0; fi
  port_open "$CH_TCP_PORT" && die "port $CH_TCP_PORT is taken by another process; stop it or change CH_TCP_PORT in scripts/env.sh"
  mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas"
  cat >"$DIR/config.xml" <<CONF
<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>$LOGS/clickhouse-server.log</log><errorlog>$LOGS/clickhouse-server.err.log</errorlog><size>100M</size><count>3</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <http_port>$CH_HTTP_PORT</http_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <mark_cache_size>1073741824</mark_cache_size>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
CONF
  cat >"$DIR/users.xml" <<CONF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default><readonly><readonly>1</readonly></readonly></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
CONF
  say "starting clickhouse-server 18.16 on 127.0.0.1:$CH_TCP_PORT (log $LOG)"
  nohup /usr/sbin/clickhouse-server --config-file="$DIR/config.xml" >>"$LOGS/clickhouse-server.out" 2>&1 &
  echo $! >"$PID"
  wait_for clickhouse-server 60 "$LOG" ready
  say "clickhouse-server ready: $ORDERFLOW_CLICKHOUSE_ADDR"
}

case "${1:-}" in
  up) up ;; down) stop_pid clickhouse-server "$PID" ;;
  status) ready && echo "clickhouse-server: up" || echo "clickhouse-server: down" ;;
  *) die "usage: $0 up|down|status" ;;
esac
