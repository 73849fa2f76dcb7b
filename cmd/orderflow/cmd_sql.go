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
		summary:  "run read-only analyst SQL on the embedded engine (writes are refused): sql \"SELECT ...\" [--format table|csv|json]",
		args:     "\"<SQL>\"",
		sections: []config.Section{config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var format string
			l.String(&format, "format", "table", "output: table, csv or json")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				args, err := parseTrailing(args, func(fs *flag.FlagSet) { fs.StringVar(&format, "format", format, "") })
				if err != nil {
					return usageErrorf("%v", err)
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
				res, err := queries.QuerySQL(ctx, eng, query)
				if err != nil {
					p := queries.Classify(err)
					var ex *sinks.Exception
					if errors.As(err, &ex) && p.Status < 500 {
						return fmt.Errorf("%s", p.Detail)
					}
					return err
				}
				return queries.Write(e.Stdout, res, format)
			}
		},
	})
}
