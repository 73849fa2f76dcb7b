package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/queries"
)

func init() {
	register(&command{
		name:     "rollup",
		summary:  "recompute the changed months of the reports' monthly rollups now (the transformer does it every -rollup-interval); --status lists them",
		sections: []config.Section{config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var status bool
			l.Bool(&status, "status", false, "only list each rollup's months and whether the reports read them from the rollup")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("rollup takes no arguments, got %q", strings.Join(args, " "))
				}
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				defer eng.Close()
				if !status {
					t0 := time.Now()
					st, err := queries.RefreshRollup(ctx, eng, e.Log)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.Stdout, "rollups refreshed: %d months, %d rows in %s; %d months changed while being computed (left for the next refresh)\n",
						st.Months, st.Rows, time.Since(t0).Round(time.Millisecond), st.Skipped)
					return nil
				}
				ms, err := queries.RollupStatus(ctx, eng)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.Stdout, "%-16s %-8s %s\n", "rollup", "month", "read by the reports")
				for _, m := range ms {
					state := "no: the facts changed since the last refresh (reports read the facts)"
					if m.Current {
						state = "yes"
					}
					fmt.Fprintf(e.Stdout, "%-16s %-8s %s\n", m.Rollup, m.Month.Format("2006-01"), state)
				}
				return nil
			}
		},
	})
}
