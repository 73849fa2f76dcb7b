package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/queries"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
	"github.com/orderflow/orderflow/sinks/open"
)

func init() {
	register(&command{
		name:     "transform",
		summary:  "consume the captured topics and build the ClickHouse query side (as-of joined facts, effectively once)",
		sections: []config.Section{config.SecHTTP, config.SecKafka, config.SecClickHouse},
		serve:    true,
		setup: func(l *config.Loader, c *config.Config) runFunc {
			var pc pipeline.Config
			l.String(&pc.Group, "transform-group", "orderflow-transform", "Kafka consumer group of the transformers (scale out by starting more processes in one group)")
			l.String(&pc.Schema, "transform-schema", "public", "captured PostgreSQL schema (topics are <prefix>.<schema>.<table>)")
			l.String(&pc.DLQTopic, "transform-dlq-topic", "", "dead-letter topic (default <prefix>.dlq)")
			l.Int(&pc.MaxRows, "transform-max-rows", 50_000, "flush a batch at this many rows")
			l.Int(&pc.MaxBytes, "transform-max-bytes", 16<<20, "flush a batch built from this many event bytes")
			l.Duration(&pc.MaxAge, "transform-max-age", 200*time.Millisecond, "flush a batch this long after its first event (freshness)")
			l.Int(&pc.MaxPoll, "transform-max-poll", 10_000, "records taken per poll")
			l.Int(&pc.BacklogRows, "transform-backlog-max-rows", 400_000,
				"while behind (at least -transform-max-rows events of consumer lag, or a full poll), flush a batch at this many rows instead (larger parts: less CPU per row); at most -transform-max-rows turns this off")
			l.Int(&pc.BacklogBytes, "transform-backlog-max-bytes", 128<<20, "while behind, flush a batch built from this many event bytes")
			l.Duration(&pc.BacklogAge, "transform-backlog-max-age", 3*time.Second, "while behind, flush a batch this long after its first event")
			var migrate bool
			l.Bool(&migrate, "migrate", false, "apply pending ClickHouse migrations at start-up")
			var rollupEvery time.Duration
			l.Duration(&rollupEvery, "rollup-interval", time.Minute,
				"recompute the changed months of the reports' monthly rollups this often (0: never; with several transformers on one database, set it on one)")
			return func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("transform takes no arguments, got %q", strings.Join(args, " "))
				}
				if pc.MaxRows < 1 || pc.MaxBytes < 1 || pc.MaxAge <= 0 || pc.MaxPoll < 1 {
					return usageErrorf("-transform-max-rows, -transform-max-bytes, -transform-max-age and -transform-max-poll must be positive")
				}
				if pc.BacklogRows < 1 || pc.BacklogBytes < 1 || pc.BacklogAge <= 0 {
					return usageErrorf("-transform-backlog-max-rows, -transform-backlog-max-bytes and -transform-backlog-max-age must be positive (set -transform-backlog-max-rows to -transform-max-rows to turn the backlog limits off)")
				}
				if rollupEvery < 0 {
					return usageErrorf("-rollup-interval must not be negative")
				}
				kopts, err := capture.KafkaClientOpts(e.Cfg.Kafka)
				if err != nil {
					return usageErrorf("kafka: %v", err)
				}
				pc.Brokers, pc.TopicPrefix, pc.KafkaOpts = e.Cfg.Kafka.Brokers, e.Cfg.Kafka.TopicPrefix, kopts
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				if migrate {
					if _, err := migrateClickHouse(ctx, e, eng); err != nil {
						_ = eng.Close()
						return err
					}
				}
				tr, err := pipeline.New(pc, eng, e.Reg, e.Log)
				if err != nil {
					_ = eng.Close()
					return err
				}
				if e.HTTP != nil {
					e.HTTP.AddCheck("transform", func(context.Context) error {
						select {
						case <-tr.Ready():
							return nil
						default:
							return errors.New("loading dimension state")
						}
					})
				}
				var refresher *queries.RollupRefresher
				var reng sinks.Engine
				if rollupEvery > 0 {
					// The refresher has its own connection: the embedded
					// engine runs one statement at a time per connection, and
					// a refresh (seconds at 10M orders) on the sink's would
					// hold back every insert behind it (freshness p99 4.6 s
					// instead of 0.5 s during a continuous refresh at 5,000
					// changes/s, BenchmarkFreshness with a refresh loop).
					if reng, err = openSink(ctx, e); err != nil {
						_ = eng.Close()
						return fmt.Errorf("open a second ClickHouse connection for the rollup refresher: %w", err)
					}
					refresher = queries.NewRollupRefresher(reng, rollupEvery, e.Reg, e.Log)
				}
				g.Go(func() error {
					defer eng.Close()
					if refresher == nil {
						return tr.Run(ctx)
					}
					defer reng.Close()
					// the refresh starts once the transformer is consuming
					// and stops before the engines close
					rctx, stop := context.WithCancel(ctx)
					done := make(chan struct{})
					go func() {
						defer close(done)
						select {
						case <-tr.Ready():
							refresher.Run(rctx)
						case <-rctx.Done():
						}
					}()
					err := tr.Run(ctx)
					stop()
					<-done
					return err
				})
				return nil
			}
		},
	})
}

// openSink opens the configured ClickHouse engine (libchdb.so is loaded only
// when the embedded engine is selected).
func openSink(ctx context.Context, e *Env) (sinks.Engine, error) {
	return open.Open(ctx, e.Cfg.ClickHouse, e.Log)
}

// migrateClickHouse applies the query-side migrations of sinks/chschema.
func migrateClickHouse(ctx context.Context, e *Env, eng sinks.Engine) (string, error) {
	done, err := chmigrate.Migrate(ctx, eng, chschema.Migrations, e.Log)
	if err != nil {
		return "", fmt.Errorf("migrate ClickHouse database %s: %w", eng.Database(), err)
	}
	e.Log.Info("clickhouse migrated", "database", eng.Database(), "applied", done)
	if len(done) == 0 {
		return fmt.Sprintf("database %s up to date", eng.Database()), nil
	}
	return fmt.Sprintf("database %s: applied %v", eng.Database(), done), nil
}

// refreshRollupAfter brings the reports' monthly rollups up to date after a
// batch job rewrote facts (what reads from the facts until then is exact,
// only slower). With the embedded engine this process owns the data, so no
// other refresher can run; on a server the transformer's -rollup-interval
// does it, and a second refresher here could interleave with it.
func refreshRollupAfter(ctx context.Context, e *Env, eng sinks.Engine, job string) error {
	if e.Cfg.ClickHouse.Engine != "chdb" {
		fmt.Fprintf(e.Stdout, "%s: the reports' rollups are refreshed by the transformer (-rollup-interval); until then reports read the facts\n", job)
		return nil
	}
	t0 := time.Now()
	st, err := queries.RefreshRollup(ctx, eng, e.Log)
	if err != nil {
		return fmt.Errorf("%s done, but refreshing the reports' rollups failed (reports read the facts until the transformer's refresh): %w", job, err)
	}
	fmt.Fprintf(e.Stdout, "%s: reports' rollups refreshed: %d months, %d rows in %s\n", job, st.Months, st.Rows, time.Since(t0).Round(time.Millisecond))
	return nil
}
