package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/load"
	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:     "load",
		summary:  "generate a realistic, seeded order workload: direct to PostgreSQL in batches, or through the command API",
		sections: []config.Section{config.SecPostgres, config.SecAPI},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var (
				mode, apiURL, namespace, start                    string
				seed                                              int64
				customers, orders, products, campaigns, simDays   int
				batch, concurrency                                int
				rate                                              float64
				duration, flushEvery                              time.Duration
				truncate, checksum, migrate, progress, noProgress bool
			)
			l.String(&mode, "mode", "direct", "direct (batched transactions straight to PostgreSQL) or http (through the command API)")
			l.Int64(&seed, "seed", 1, "random seed: the same seed gives the same workload (and, direct to a fresh or -truncate'd database, identical tables)")
			l.Int(&customers, "customers", 1000, "customers to create (30% sign up before the first order)")
			l.Int(&orders, "orders", 10000, "orders to place")
			l.Int(&products, "products", 500, "products in the catalogue")
			l.Int(&campaigns, "campaigns", 12, "discount campaigns over the simulated span")
			l.Int(&simDays, "sim-days", 365, "simulated days over which the orders arrive")
			l.String(&start, "sim-start", load.DefaultStart.Format(time.DateOnly), "simulated date of the first order (YYYY-MM-DD)")
			l.Float(&rate, "rate", 0, "open-loop rate in orders per second (other commands follow their orders); 0 = as fast as possible")
			l.Duration(&duration, "duration", 0, "stop after this long (0 = when every order is placed)")
			l.Int(&batch, "batch", 2000, "direct: most commands per transaction")
			l.Duration(&flushEvery, "flush-every", 10*time.Millisecond, "direct with -rate: commit at least this often")
			l.Int(&concurrency, "concurrency", 32, "http: parallel clients")
			l.String(&apiURL, "api-url", "http://"+config.DefaultHTTPAddr, "http: base URL of the command API")
			l.String(&namespace, "namespace", "", "up to 8 lower-case letters/digits put into emails, SKUs and campaign codes, to load several runs into one database")
			l.Bool(&truncate, "truncate", false, "direct: empty the command tables (and restart their ids) before loading")
			l.Bool(&checksum, "checksum", false, "print a checksum of every command table at the end")
			l.Bool(&migrate, "migrate", true, "direct: apply pending PostgreSQL migrations first")
			l.Bool(&progress, "progress", false, "print a progress line to stderr even when it is not a terminal")
			l.Bool(&noProgress, "no-progress", false, "never print the progress line")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("load takes no arguments, got %q", args)
				}
				simStart, err := time.Parse(time.DateOnly, start)
				if err != nil {
					return usageErrorf("-sim-start %q: want YYYY-MM-DD", start)
				}
				switch {
				case mode != "direct" && mode != "http":
					return usageErrorf("-mode %q: want direct or http", mode)
				case seed < 0:
					return usageErrorf("-seed must not be negative")
				case customers < 0 || orders < 0 || products < 1 || campaigns < 0 || simDays < 1:
					return usageErrorf("-customers, -orders, -campaigns must be >= 0, -products and -sim-days >= 1")
				case orders > 0 && customers == 0:
					return usageErrorf("-orders needs at least one customer (-customers)")
				case rate < 0 || batch < 1 || concurrency < 1 || flushEvery <= 0:
					return usageErrorf("-rate must be >= 0, -batch and -concurrency >= 1, -flush-every > 0")
				case mode == "http" && truncate:
					return usageErrorf("-truncate is for -mode direct")
				}
				prm := load.Params{Seed: uint64(seed), Customers: customers, Orders: orders, Products: products, Campaigns: campaigns,
					Start: simStart, Span: time.Duration(simDays) * 24 * time.Hour, Namespace: namespace}
				opts := load.Options{Rate: rate, Duration: duration, BatchSize: batch, FlushEvery: flushEvery, Concurrency: concurrency}
				if !noProgress && (progress || isTerminal(e.Stderr)) {
					opts.Progress = e.Stderr
				}
				var sum load.Summary
				var runErr error
				if mode == "direct" {
					conn, err := connectPostgres(ctx, e.Cfg.Postgres.URL, 0)
					if err != nil {
						return err
					}
					defer conn.Close(context.WithoutCancel(ctx))
					if migrate {
						if _, err := pgschema.Migrate(ctx, conn); err != nil {
							return fmt.Errorf("migrate: %w", err)
						}
					}
					sum, runErr = load.RunDirect(ctx, conn, prm, opts, truncate)
				} else {
					c := &load.Client{Base: strings.TrimRight(apiURL, "/"), Token: e.Cfg.API.Token,
						HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}}
					sum, runErr = load.RunHTTP(ctx, c, prm, opts)
				}
				if sum.Mode != "" {
					sum.Format(e.Stdout)
				}
				if runErr != nil {
					return runErr
				}
				if checksum {
					conn, err := connectPostgres(ctx, e.Cfg.Postgres.URL, 0)
					if err != nil {
						return err
					}
					defer conn.Close(context.WithoutCancel(ctx))
					sums, err := load.Checksums(ctx, conn)
					if err != nil {
						return err
					}
					for _, s := range sums {
						fmt.Fprintf(e.Stdout, "checksum %-12s %9d rows  %s\n", s.Table, s.Rows, s.MD5)
					}
				}
				return nil
			}
		},
	})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
