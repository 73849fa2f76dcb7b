package main

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/queries"
)

func init() {
	register(&command{
		name:     "reports-api",
		summary:  "serve the report API (GET /v1/reports, /v1/reports/{name}) and read-only SQL (POST /v1/sql)",
		sections: []config.Section{config.SecHTTP, config.SecClickHouse},
		serve:    true,
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var timeout time.Duration
			var maxRows int
			l.Duration(&timeout, "query-timeout", 60*time.Second, "longest a report or SQL request may run")
			l.Int(&maxRows, "sql-max-rows", queries.DefaultMaxSQLRows, "most rows POST /v1/sql returns; a longer result is cut and says so (Orderflow-Truncated: true, JSON truncated)")
			return func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("reports-api takes no arguments, got %q", strings.Join(args, " "))
				}
				if timeout <= 0 {
					return usageErrorf("-query-timeout must be positive")
				}
				if maxRows <= 0 {
					return usageErrorf("-sql-max-rows must be positive, got %d", maxRows)
				}
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				h, err := queries.Handler(eng, queries.HandlerOptions{Registerer: e.Reg, Log: e.Log, Timeout: timeout, MaxSQLRows: maxRows})
				if err != nil {
					_ = eng.Close()
					return err
				}
				for _, p := range []string{"/v1/reports", "/v1/reports/", "/v1/sql"} {
					e.HTTP.Handle(p, h)
				}
				e.HTTP.AddCheck("clickhouse", func(ctx context.Context) error {
					_, err := eng.Query(ctx, "SELECT 1", nil)
					return err
				})
				e.Log.Info("report API ready", "stage", "queries", "reports", len(queries.List()), "engine", e.Cfg.ClickHouse.Engine)
				g.Go(func() error {
					<-ctx.Done()
					return eng.Close()
				})
				return nil
			}
		},
	})
}
