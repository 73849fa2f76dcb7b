#!/usr/bin/env bash
# Apache Kafka (version pinned in scripts/kafka/pom.xml), a real broker in KRaft
# mode (one node, broker + controller) on 127.0.0.1:59092, from the official
# jars fetched by Maven into .local/cache/kafka/<version>/libs.
# Usage: kafka.sh up|down|status
source "$(dirname "$0")/env.sh"
LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
DIR="$STACK/kafka"
LOG="$LOGS/kafka.log"
PID="$RUN/kafka.pid"
BIN="$STACK/bin/orderflow"

fetch() {
  if [[ -f $LIBS/.complete ]]; then return 0; fi
  command -v java >/dev/null || need_pkgs openjdk-17-jre-headless
  command -v mvn >/dev/null || need_pkgs maven
  say "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$LOGS/kafka-mvn.log" 2>&1 \
    || { tail -n 30 "$LOGS/kafka-mvn.log" >&2; die "mvn could not fetch Kafka $KAFKA_VERSION; see $LOGS/kafka-mvn.log"; }
  touch "$LIBS/.complete"
}

ready() { "$BIN" doctor --only kafka --wait 0s >/dev/null 2>&1; }

up() {
  fetch
  if pid_alive "$PID" && ready; then say "kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; stop it or change KAFKA_PORT in scripts/env.sh"
  mkdir -p "$DIR/data"
  cat >"$DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
log.segment.bytes=268435456
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
transaction.max.timeout.ms=900000
CONF
  local java_opts=(-Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.yaml" -cp "$LIBS/*")
  if [[ ! -f $DIR/data/meta.properties ]]; then
    say "formatting KRaft storage in $DIR/data"
    local id; id=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n 1)
    java "${java_opts[@]}" kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" >>"$LOG" 2>&1 \
      || die "formatting Kafka storage failed; see $LOG"
  fi
  say "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (log $LOG)"
  nohup java "${java_opts[@]}" kafka.Kafka "$DIR/server.properties" >>"$LOG" 2>&1 &
  echo $! >"$PID"
  "$BIN" doctor --only kafka --wait 90s >/dev/null 2>>"$LOG" || { tail -n 30 "$LOG" >&2; die "kafka did not answer a metadata request within 90s; see $LOG"; }
  say "kafka ready: $ORDERFLOW_KAFKA_BROKERS"
}

case "${1:-}" in
  up) up ;; fetch) fetch ;; down) stop_pid kafka "$PID" ;;
  status) ready && echo "kafka: up" || echo "kafka: down" ;;
  *) die "usage: $0 up|fetch|down|status" ;;
esac
