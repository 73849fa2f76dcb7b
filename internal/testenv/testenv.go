// Package testenv gives integration tests the real services of the local
// stack (`make up`): PostgreSQL, Kafka, the ClickHouse server and the embedded
// engine's library. Addresses come from the ORDERFLOW_* variables the Makefile
// exports, defaulting to the local stack. When a service is unreachable the
// test is skipped with a message, except under CI=true, where it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/config"
)

// CI reports whether missing services must fail tests.
func CI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// Unavailable skips the test (or fails it under CI) because service is missing.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s unavailable: %v (start the local stack with `make up`)", service, err)
	if CI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// RepoRoot is the repository's root directory (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Name returns a short random lower-case identifier with prefix, for
// per-test databases, topics and tables.
func Name(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// PostgresAdminURL is the URL of the stack's PostgreSQL (a superuser).
func PostgresAdminURL() string { return env("ORDERFLOW_PG_URL", config.DefaultPostgresURL) }

// Postgres creates a fresh database for the test on the real server and
// returns its URL; the database (and any replication slot in it) is dropped
// when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unavailable(t, "PostgreSQL at "+redact(admin), err)
	}
	defer conn.Close(ctx)
	db := Name("t")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create test database %s: %v", db, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", db, err)
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL", db)
		_, _ = c.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1", db)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", db, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", redact(admin), err)
	}
	u.Path = "/" + db
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// KafkaBrokers returns the stack's Kafka brokers after checking that one
// answers a metadata request.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(env("ORDERFLOW_KAFKA_BROKERS", config.DefaultKafkaBrokers), ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		Unavailable(t, "Kafka", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		Unavailable(t, "Kafka at "+strings.Join(brokers, ","), err)
	}
	return brokers
}

// ClickHouseServerAddr returns the stack's ClickHouse server native address
// after checking that it accepts connections.
func ClickHouseServerAddr(t testing.TB) string {
	t.Helper()
	addr := env("ORDERFLOW_CLICKHOUSE_ADDR", config.DefaultClickHouseAddr)
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		Unavailable(t, "ClickHouse server at "+addr, err)
	}
	_ = c.Close()
	return addr
}

// ChdbLib returns the path of libchdb.so fetched by `make up`.
func ChdbLib(t testing.TB) string {
	t.Helper()
	p := env("ORDERFLOW_CHDB_LIB", filepath.Join(RepoRoot(), config.DefaultChdbLib))
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "libchdb.so", err)
	}
	return p
}
