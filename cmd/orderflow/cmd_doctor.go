package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/doctor"
)

func init() {
	register(&command{
		name:     "doctor",
		summary:  "check that PostgreSQL, Kafka, the ClickHouse server and libchdb.so answer",
		sections: []config.Section{config.SecPostgres, config.SecKafka, config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var only string
			var wait time.Duration
			l.String(&only, "only", strings.Join(doctor.Services, ","), "comma-separated services to check")
			l.Duration(&wait, "wait", 0, "keep retrying each check for up to this long")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, _ []string) error {
				failed := 0
				for _, s := range strings.Split(only, ",") {
					s = strings.TrimSpace(s)
					msg, err := doctor.Wait(ctx, e.Cfg, s, wait)
					if err != nil {
						failed++
						fmt.Fprintf(e.Stdout, "%-18s FAIL  %v\n", s, err)
						continue
					}
					fmt.Fprintf(e.Stdout, "%-18s ok    %s\n", s, msg)
				}
				if failed > 0 {
					return fmt.Errorf("%d service check(s) failed", failed)
				}
				return nil
			}
		},
	})
}
