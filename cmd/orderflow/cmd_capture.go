package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:     "capture",
		summary:  "stream PostgreSQL changes (logical replication) into Kafka topics, exactly once",
		sections: []config.Section{config.SecHTTP, config.SecPostgres, config.SecKafka},
		serve:    true,
		setup: func(l *config.Loader, c *config.Config) runFunc {
			var (
				o                         capture.Options
				tables                    string
				setup                     bool
				setupRole, setupPassword  string
				flush, status, heartbeat  time.Duration
				partitions, rf, maxEvents int
			)
			l.String(&tables, "capture-tables", "", "comma-separated tables (schema.table or table) for a publication capture creates; empty: every table in schema public")
			l.Int(&partitions, "capture-partitions", 3, "partitions of each table topic capture creates")
			l.Int(&rf, "capture-replication-factor", -1, "replication factor of created topics (-1: broker default)")
			l.Int64(&o.TopicRetentionMs, "capture-topic-retention-ms", -1, "retention.ms of the table topics capture creates (-1: keep every event, which the transformer's state and replay rely on)")
			l.String(&o.TransactionalID, "capture-transactional-id", "", "Kafka transactional ID (default <prefix>-capture-<slot>); one capture process per ID")
			l.Duration(&flush, "capture-flush-interval", 250*time.Millisecond, "longest a Kafka transaction stays open while changes arrive")
			l.Int(&maxEvents, "capture-max-txn-events", 200000, "events after which the Kafka transaction commits at the next PostgreSQL commit")
			l.Duration(&status, "capture-status-interval", 10*time.Second, "standby status interval (keep well under wal_sender_timeout)")
			l.Duration(&heartbeat, "capture-heartbeat-interval", 10*time.Second, "pg_logical_emit_message heartbeat and slot-lag sampling interval (negative: off)")
			l.Duration(&o.KafkaTxnTimeout, "capture-kafka-txn-timeout", 10*time.Minute, "Kafka transaction timeout (at most the broker's transaction.max.timeout.ms); one PostgreSQL transaction must be produced within it")
			l.String(&o.SpoolDir, "capture-spool-dir", "", "directory for spooled streamed transactions (default: system temp dir)")
			l.String(&o.DecodingWorkMem, "capture-decoding-work-mem", "", "logical_decoding_work_mem for the walsender, e.g. 64MB; bigger transactions are streamed (default: server setting)")
			l.Bool(&setup, "setup", false, "run as an administrator: create the publication and the capture role (-setup-role) with REPLICATION and SELECT, then exit")
			l.String(&setupRole, "setup-role", "", "with -setup: the capture role to create or update")
			l.String(&setupPassword, "setup-password", "", "with -setup: the capture role's password")
			return func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("capture takes no arguments, got %q", strings.Join(args, " "))
				}
				if partitions < 1 {
					return usageErrorf("-capture-partitions must be at least 1")
				}
				o.Postgres, o.Kafka = e.Cfg.Postgres, e.Cfg.Kafka
				for _, t := range strings.Split(tables, ",") {
					if t = strings.TrimSpace(t); t != "" {
						o.Tables = append(o.Tables, t)
					}
				}
				if setup {
					e.HTTP = nil // a one-shot command: nothing to serve
					return runCaptureSetup(ctx, e, o, setupRole, setupPassword)
				}
				o.Partitions, o.ReplicationFactor, o.MaxTxnEvents = partitions, rf, maxEvents
				o.FlushInterval, o.StatusInterval, o.HeartbeatInterval = flush, status, heartbeat
				cp := capture.New(o, e.Log, capture.NewMetrics(e.Reg))
				if e.HTTP != nil {
					e.HTTP.AddCheck("capture", func(context.Context) error {
						if !cp.Ready() {
							return errors.New("replication is not streaming")
						}
						return nil
					})
				}
				g.Go(func() error { return cp.Run(ctx) })
				return nil
			}
		},
	})
}

func runCaptureSetup(ctx context.Context, e *Env, o capture.Options, role, password string) error {
	conn, err := pgx.Connect(ctx, o.Postgres.URL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	ran, err := capture.Setup(ctx, conn, capture.SetupOptions{Role: role, Password: password, Publication: o.Postgres.Publication, Tables: o.Tables})
	for _, s := range ran {
		fmt.Fprintln(e.Stdout, s+";")
	}
	if err != nil {
		return fmt.Errorf("capture setup: %w", err)
	}
	fmt.Fprintf(e.Stdout, "capture setup done: publication %s", o.Postgres.Publication)
	if role != "" {
		fmt.Fprintf(e.Stdout, ", role %s (REPLICATION, SELECT on the published tables)", role)
	}
	fmt.Fprintln(e.Stdout)
	return nil
}
