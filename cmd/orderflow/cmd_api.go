package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/api"
	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:     "api",
		summary:  "serve the command API (/v1/customers, /v1/orders, ..., /openapi.json) on -http-addr",
		sections: []config.Section{config.SecHTTP, config.SecPostgres, config.SecAPI},
		serve:    true,
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var maxConns int
			var migrate bool
			var wait time.Duration
			l.Int(&maxConns, "pg-max-conns", 16, "largest number of PostgreSQL connections the API opens")
			l.Bool(&migrate, "migrate", false, "apply pending PostgreSQL migrations at start-up")
			l.Duration(&wait, "pg-wait", 0, "keep retrying to reach PostgreSQL at start-up for up to this long")
			var keyTTL time.Duration
			l.Duration(&keyTTL, "idempotency-ttl", 24*time.Hour, "how long an Idempotency-Key is remembered (0 = forever)")
			return func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("api takes no arguments, got %q", args)
				}
				if keyTTL < 0 {
					return usageErrorf("-idempotency-ttl must not be negative")
				}
				if maxConns < 1 {
					return usageErrorf("-pg-max-conns must be at least 1")
				}
				pool, err := openPool(ctx, e.Cfg.Postgres.URL, int32(maxConns), wait)
				if err != nil {
					return err
				}
				if migrate {
					res, err := pgschema.Migrate(ctx, pool)
					if err != nil {
						pool.Close()
						return fmt.Errorf("migrate: %w", err)
					}
					e.Log.Info("postgres migrated", "from", res.From, "to", res.To)
				}
				if err := pgschema.CheckCurrent(ctx, pool); err != nil {
					pool.Close()
					return err
				}
				srv, err := api.New(api.Options{
					Pool: pool, Token: e.Cfg.API.Token, MaxBodyBytes: e.Cfg.API.MaxBodyBytes,
					Registerer: e.Reg, Log: e.Log.With("stage", "api"),
				})
				if err != nil {
					pool.Close()
					return err
				}
				srv.Mount(e.HTTP.Handle)
				e.HTTP.AddCheck("postgres", func(ctx context.Context) error {
					if err := srv.Ready(ctx); err != nil {
						return err
					}
					return pgschema.CheckCurrent(ctx, pool)
				})
				if keyTTL > 0 {
					g.Go(func() error { return srv.RunPruner(ctx, keyTTL, min(keyTTL/4, 10*time.Minute)) })
				}
				e.Log.Info("command API ready", "auth", e.Cfg.API.Token != "", "openapi", "/openapi.json")
				g.Go(func() error {
					// Close waits for the connections of in-flight commands,
					// which the HTTP server lets finish on shutdown.
					<-ctx.Done()
					pool.Close()
					return nil
				})
				return nil
			}
		},
	})
}

// openPool opens a pgx pool of at most maxConns connections and pings it,
// retrying for up to wait.
func openPool(ctx context.Context, url string, maxConns int32, wait time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse -pg-url: %w", err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL pool: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
