// Package doctor checks that the services orderflow is configured to use
// answer real requests: a PostgreSQL query (and wal_level=logical), a Kafka
// metadata request, a ClickHouse server ping, and the presence of libchdb.so.
package doctor

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/config"
)

// Services that can be checked, in check order.
var Services = []string{"postgres", "kafka", "clickhouse-server", "chdb"}

// Check runs the named service's check once.
func Check(ctx context.Context, cfg *config.Config, service string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch service {
	case "postgres":
		conn, err := pgx.Connect(ctx, cfg.Postgres.URL)
		if err != nil {
			return "", fmt.Errorf("connect: %w", err)
		}
		defer conn.Close(ctx)
		var version, wal string
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('wal_level')").Scan(&version, &wal); err != nil {
			return "", fmt.Errorf("query: %w", err)
		}
		if wal != "logical" {
			return "", fmt.Errorf("wal_level is %q; capture needs wal_level=logical in postgresql.conf", wal)
		}
		return "PostgreSQL " + version + ", wal_level=logical", nil
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
		if err != nil {
			return "", err
		}
		defer cl.Close()
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil {
			return "", fmt.Errorf("metadata request to %v: %w", cfg.Kafka.Brokers, err)
		}
		return fmt.Sprintf("%d broker(s), cluster %s", len(md.Brokers), md.Cluster), nil
	case "clickhouse-server":
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.ClickHouse.Addr},
			Auth:        clickhouse.Auth{Username: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password},
			DialTimeout: 3 * time.Second})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		v, err := conn.ServerVersion()
		if err != nil {
			return "", fmt.Errorf("hello to %s: %w", cfg.ClickHouse.Addr, err)
		}
		return "ClickHouse server " + v.String(), nil
	case "chdb":
		st, err := os.Stat(cfg.ClickHouse.ChdbLib)
		if err != nil {
			return "", fmt.Errorf("%w (fetch it with scripts/chdb.sh or make up)", err)
		}
		return fmt.Sprintf("libchdb.so %d MiB at %s", st.Size()>>20, cfg.ClickHouse.ChdbLib), nil
	}
	return "", fmt.Errorf("unknown service %q (known: %v)", service, Services)
}

// Wait retries Check until it succeeds or wait has passed.
func Wait(ctx context.Context, cfg *config.Config, service string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		msg, err := Check(ctx, cfg, service)
		if err == nil || time.Now().After(deadline) {
			return msg, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
