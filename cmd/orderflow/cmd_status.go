package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/status"
)

func init() {
	register(&command{
		name:    "status",
		summary: "show a running orderflow's progress: changes captured, facts written, lags, freshness",
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var url string
			var watch time.Duration
			l.String(&url, "url", "http://"+config.DefaultHTTPAddr, "HTTP address of the orderflow process (its /metrics)")
			l.Duration(&watch, "watch", 0, "print a line every interval until interrupted (0: print once)")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, _ []string) error {
				prev, err := status.Fetch(ctx, url)
				if err != nil {
					return err
				}
				if watch <= 0 {
					_, err := fmt.Fprintln(e.Stdout, status.Line(nil, prev))
					return err
				}
				t := time.NewTicker(watch)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
					}
					cur, err := status.Fetch(ctx, url)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.Stdout, "%s  %s\n", cur.At.Format("15:04:05"), status.Line(prev, cur))
					prev = cur
				}
			}
		},
	})
}
