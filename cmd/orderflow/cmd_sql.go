package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/queries"
	"github.com/orderflow/orderflow/sinks"
)

// nowFunc is the clock of relative report defaults (tests replace it).
var nowFunc = time.Now

func init() {
	register(&command{
		name:     "sql",
		summary:  "run read-only analyst SQL on the embedded engine (writes are refused): sql \"SELECT ...\" [--format table|csv|json] [--sql-max-rows N]",
		args:     "\"<SQL>\"",
		sections: []config.Section{config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var format string
			var maxRows int
			l.String(&format, "format", "table", "output: table, csv or json")
			l.Int(&maxRows, "sql-max-rows", queries.DefaultMaxSQLRows, "most rows to print; a longer result is cut (the table and JSON say so, and so does a warning on stderr)")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				args, err := parseTrailing(args, func(fs *flag.FlagSet) {
					fs.StringVar(&format, "format", format, "")
					fs.IntVar(&maxRows, "sql-max-rows", maxRows, "")
				})
				if err != nil {
					return usageErrorf("%v", err)
				}
				if maxRows <= 0 {
					return usageErrorf("--sql-max-rows must be positive, got %d", maxRows)
				}
				switch format {
				case "table", "csv", "json":
				default:
					return usageErrorf("--format %q is not table, csv or json", format)
				}
				query := strings.TrimSpace(strings.Join(args, " "))
				if query == "" {
					return usageErrorf("give the SQL to run, e.g. orderflow sql \"SELECT count() FROM customer_orders FINAL\"")
				}
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				defer eng.Close()
				res, err := queries.QuerySQL(ctx, eng, query, maxRows)
				if err != nil {
					p := queries.Classify(err)
					var ex *sinks.Exception
					if errors.As(err, &ex) && p.Status < 500 {
						return fmt.Errorf("%s", p.Detail)
					}
					return err
				}
				if err := queries.Write(e.Stdout, res, format); err != nil {
					return err
				}
				if res.Truncated {
					fmt.Fprintf(e.Stderr, "orderflow sql: result truncated to the first %d rows (it has more); add a LIMIT or raise --sql-max-rows\n", res.MaxRows)
				}
				return nil
			}
		},
	})
}
