package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/backfill"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/sinks"
)

func init() {
	register(&command{
		name:     "backfill",
		summary:  "publish a consistent, parallel, resumable snapshot of PostgreSQL to the captured topics (op \"r\"), so the transformer loads it into ClickHouse (or, with -direct, write its ClickHouse rows here) and streaming continues without gap or overlap",
		sections: []config.Section{config.SecPostgres, config.SecKafka, config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var o backfill.Options
			var tables string
			var chunk int64
			l.String(&tables, "tables", strings.Join(backfill.DefaultTables, ","), "comma-separated tables to load (order_items are copied with their orders)")
			l.Int(&o.Workers, "workers", 4, "parallel copy workers, each importing the exported snapshot (at most 64)")
			l.Int64(&chunk, "chunk-rows", 50_000, "primary-key range per chunk (the unit of checkpointing and of a Kafka transaction)")
			l.String(&o.Schema, "schema", "public", "PostgreSQL schema of the tables")
			l.Int(&o.Partitions, "partitions", 3, "partitions of table topics created when missing (as capture creates them)")
			l.Int64(&o.TopicRetentionMs, "topic-retention-ms", -1, "retention.ms of table topics created when missing (-1: keep every event, which the transformer's state and replay rely on)")
			l.Bool(&o.NoCreateSlot, "no-create-slot", false, "when capture's slot (-pg-slot) does not exist, use a temporary slot for the snapshot instead of creating it")
			l.Bool(&o.Restart, "restart", false, "abandon an unfinished run and start a new one (default: resume it)")
			l.Duration(&o.ProgressInterval, "progress-interval", 2*time.Second, "how often to print per-table progress on stderr")
			var direct, migrate bool
			l.Bool(&migrate, "migrate", false, "with -direct: apply pending ClickHouse migrations first")
			l.Bool(&direct, "direct", false, "derive the snapshot's ClickHouse rows (raw mirror, dimensions, facts) in this process and write them to the -clickhouse-* database, "+
				"instead of leaving them to the transformer (which then applies the snapshot events to its state only); with the embedded engine, stop the transformer first")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("backfill takes no arguments, got %q", strings.Join(args, " "))
				}
				if o.Workers < 1 || o.Workers > 64 {
					return usageErrorf("-workers must be between 1 and 64")
				}
				if chunk < 1 {
					return usageErrorf("-chunk-rows must be positive")
				}
				o.ChunkRows = chunk
				for _, t := range strings.Split(tables, ",") {
					if t = strings.TrimSpace(t); t != "" {
						o.Tables = append(o.Tables, t)
					}
				}
				if len(o.Tables) == 0 {
					return usageErrorf("-tables is empty")
				}
				o.Postgres, o.Kafka = e.Cfg.Postgres, e.Cfg.Kafka
				o.Progress, o.Registerer = e.Stderr, e.Reg
				var eng sinks.Engine
				if direct {
					var err error
					eng, err = openSink(ctx, e)
					if err != nil {
						hint := ""
						if e.Cfg.ClickHouse.Engine == "chdb" {
							hint = " (one process owns an embedded engine's data directory: stop the transformer, or `orderflow run`, using " + e.Cfg.ClickHouse.ChdbPath + " first)"
						}
						return fmt.Errorf("backfill -direct: open ClickHouse%s: %w", hint, err)
					}
					defer eng.Close()
					if migrate {
						if _, err := migrateClickHouse(ctx, e, eng); err != nil {
							return err
						}
					}
					o.Sink = eng
				} else if migrate {
					return usageErrorf("-migrate goes with -direct (without it the transformer writes ClickHouse: use its -migrate)")
				}
				res, err := backfill.Run(ctx, o, e.Log)
				if err != nil {
					return err
				}
				var rows int64
				for _, n := range res.Rows {
					rows += n
				}
				fmt.Fprintf(e.Stdout, "backfill run %s: %d chunks copied, %d skipped as done, %d rows in %s (%.0f rows/s); snapshot version %d\n",
					res.Run, res.Chunks, res.Skipped, rows, res.Elapsed.Round(time.Millisecond), float64(rows)/max(res.Elapsed.Seconds(), 1e-3), res.SnapshotLSN)
				if direct {
					return refreshRollupAfter(ctx, e, eng, "backfill")
				}
				return nil
			}
		},
	})
}
