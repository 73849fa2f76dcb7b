package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/sinks/chmigrate"
)

// migrateTarget is one store `orderflow migrate` can bring up to date.
// Targets run in order; each is switched on by its own flag. Add the
// query side (ClickHouse) as another target with its flag.
type migrateTarget struct {
	name    string
	enabled *bool
	run     func(ctx context.Context, e *Env) (string, error)
}

func init() {
	register(&command{
		name:     "migrate",
		summary:  "apply the database schema migrations (PostgreSQL command side, ClickHouse query side)",
		sections: []config.Section{config.SecPostgres, config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var pg bool
			var wait time.Duration
			l.Bool(&pg, "postgres", true, "migrate the PostgreSQL command-side schema")
			var ch bool
			var analystPassword string
			l.Bool(&ch, "clickhouse", false, "migrate the ClickHouse query-side schema (-clickhouse-engine picks the server or the embedded engine)")
			l.String(&analystPassword, "analyst-password", "", "with -clickhouse on a server: create or update the read-only user 'analyst' (SELECT only) with this password")
			l.Duration(&wait, "wait", 0, "keep retrying to connect to a database for up to this long (e.g. while it starts)")
			targets := []migrateTarget{
				{name: "postgres", enabled: &pg, run: func(ctx context.Context, e *Env) (string, error) { return migratePostgres(ctx, e, wait) }},
				{name: "clickhouse", enabled: &ch, run: func(ctx context.Context, e *Env) (string, error) {
					eng, err := openSink(ctx, e)
					if err != nil {
						return "", err
					}
					defer eng.Close()
					msg, err := migrateClickHouse(ctx, e, eng)
					if err != nil || analystPassword == "" {
						return msg, err
					}
					if e.Cfg.ClickHouse.Engine != "server" {
						return "", usageErrorf("-analyst-password needs -clickhouse-engine=server (the embedded engine has no users; use orderflow sql or POST /v1/sql)")
					}
					if err := chmigrate.EnsureAnalyst(ctx, eng, chmigrate.AnalystUser{Name: "analyst", Password: analystPassword}); err != nil {
						return "", fmt.Errorf("create the analyst user: %w", err)
					}
					return msg + "; read-only user analyst ready", nil
				}},
			}
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("migrate takes no arguments, got %q", args)
				}
				ran := 0
				for _, t := range targets {
					if !*t.enabled {
						continue
					}
					ran++
					msg, err := t.run(ctx, e)
					if err != nil {
						return fmt.Errorf("migrate %s: %w", t.name, err)
					}
					fmt.Fprintf(e.Stdout, "%-10s %s\n", t.name, msg)
				}
				if ran == 0 {
					return usageErrorf("nothing to migrate: every target is switched off")
				}
				return nil
			}
		},
	})
}

// connectPostgres connects to url, retrying for up to wait.
func connectPostgres(ctx context.Context, url string, wait time.Duration) (*pgx.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func migratePostgres(ctx context.Context, e *Env, wait time.Duration) (string, error) {
	conn, err := connectPostgres(ctx, e.Cfg.Postgres.URL, wait)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res, err := pgschema.Migrate(ctx, conn)
	if err != nil {
		return "", err
	}
	e.Log.Info("postgres migrated", "from", res.From, "to", res.To, "applied", len(res.Applied))
	if len(res.Applied) == 0 {
		return fmt.Sprintf("schema at version %d, nothing to apply", res.To), nil
	}
	return fmt.Sprintf("schema migrated from version %d to %d (applied %v)", res.From, res.To, res.Applied), nil
}
