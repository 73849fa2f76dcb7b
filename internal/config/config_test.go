package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := Bind(fs, &c, func(k string) string { return env[k] }, SecHTTP, SecPostgres, SecKafka, SecClickHouse, SecAPI)
	return &c, l.Parse(&c, args)
}

func TestPrecedence(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Brokers[0] != DefaultKafkaBrokers || c.ClickHouse.Engine != "chdb" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	c, err = load(t, map[string]string{"ORDERFLOW_KAFKA_BROKERS": "a:1, b:2", "ORDERFLOW_CLICKHOUSE_ENGINE": "server"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" || c.ClickHouse.Engine != "server" {
		t.Fatalf("env not applied: %v %s", c.Kafka.Brokers, c.ClickHouse.Engine)
	}
	c, err = load(t, map[string]string{"ORDERFLOW_KAFKA_BROKERS": "a:1"}, "-kafka-brokers", "c:3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "c:3" {
		t.Fatalf("flag must win over env: %v", c.Kafka.Brokers)
	}
}

func TestInvalidValuesNameTheFlag(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"-clickhouse-engine", "mysql"}, "-clickhouse-engine (ORDERFLOW_CLICKHOUSE_ENGINE)"},
		{nil, []string{"-kafka-brokers", "nohostport"}, "-kafka-brokers"},
		{nil, []string{"-http-addr", "8080"}, "-http-addr"},
		{nil, []string{"-pg-url", "mysql://x"}, "-pg-url"},
		{nil, []string{"-pg-slot", "Bad-Slot"}, "-pg-slot"},
		{nil, []string{"-log-level", "loud"}, "-log-level"},
		{nil, []string{"-kafka-sasl-mechanism", "PLAIN"}, "-kafka-sasl-user"},
		{map[string]string{"ORDERFLOW_API_MAX_BODY_BYTES": "lots"}, nil, "ORDERFLOW_API_MAX_BODY_BYTES"},
		{map[string]string{"ORDERFLOW_KAFKA_TLS": "maybe"}, nil, "ORDERFLOW_KAFKA_TLS"},
	}
	for _, tc := range cases {
		_, err := load(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want it to name %s", tc.env, tc.args, err, tc.want)
		}
	}
}

func TestExtraFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := Bind(fs, &c, func(k string) string {
		return map[string]string{"ORDERFLOW_FLUSH_AGE": "250ms", "ORDERFLOW_WORKERS": "4"}[k]
	})
	var age time.Duration
	var workers int
	var rate float64
	l.Duration(&age, "flush-age", time.Second, "")
	l.Int(&workers, "workers", 1, "")
	l.Float(&rate, "rate", 0, "")
	if err := l.Parse(&c, []string{"-rate", "12.5"}); err != nil {
		t.Fatal(err)
	}
	if age != 250*time.Millisecond || workers != 4 || rate != 12.5 {
		t.Fatalf("age=%v workers=%d rate=%v", age, workers, rate)
	}
	if EnvName("kafka-topic-prefix") != "ORDERFLOW_KAFKA_TOPIC_PREFIX" {
		t.Fatal(EnvName("kafka-topic-prefix"))
	}
}
