package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/pipeline/replay"
)

func init() {
	register(&command{
		name:     "replay",
		summary:  "rebuild ClickHouse tables from the Kafka log into shadow tables and swap them in atomically (all tables, one table, or the facts of a date range)",
		sections: []config.Section{config.SecKafka, config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var o replay.Options
			var tables, from, to string
			l.String(&tables, "tables", "", "comma-separated tables to rebuild (default: every table; with -from/-to: customer_orders,order_lines)")
			l.String(&from, "from", "", "re-derive only facts placed at or after this date (YYYY-MM-DD or RFC 3339; rounded down to the month)")
			l.String(&to, "to", "", "... and before this date (rounded up to the month)")
			l.String(&o.Schema, "schema", "public", "captured PostgreSQL schema (topics are <prefix>.<schema>.<table>)")
			l.Int(&o.BatchRows, "batch-rows", 200_000, "rows per insert")
			l.Duration(&o.ProgressInterval, "progress-interval", 2*time.Second, "how often to print progress on stderr")
			l.Bool(&o.AllowTruncatedLog, "allow-truncated-log", false, "rebuild even when retention deleted a topic's first events (after a backfill has republished every current row)")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("replay takes no arguments, got %q", strings.Join(args, " "))
				}
				for _, t := range strings.Split(tables, ",") {
					if t = strings.TrimSpace(t); t != "" {
						o.Tables = append(o.Tables, t)
					}
				}
				var err error
				if (from == "") != (to == "") {
					return usageErrorf("-from and -to go together")
				}
				if from != "" {
					if o.From, err = parseDate(from); err != nil {
						return usageErrorf("-from: %v", err)
					}
					if o.To, err = parseDate(to); err != nil {
						return usageErrorf("-to: %v", err)
					}
				}
				kopts, err := capture.KafkaClientOpts(e.Cfg.Kafka)
				if err != nil {
					return usageErrorf("kafka: %v", err)
				}
				o.Brokers, o.TopicPrefix, o.KafkaOpts = e.Cfg.Kafka.Brokers, e.Cfg.Kafka.TopicPrefix, kopts
				o.Progress = e.Stderr
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				defer eng.Close()
				res, err := replay.Run(ctx, eng, o, e.Log)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.Stdout, "replay: %d events in %s; swapped %s; partitions replaced %s; %d events applied after the swap\n",
					res.Events, res.Elapsed.Round(time.Millisecond), strings.Join(res.Swapped, ","), strings.Join(res.Replaced, ","), res.CaughtUp)
				return refreshRollupAfter(ctx, e, eng, "replay")
			}
		},
	})
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}
