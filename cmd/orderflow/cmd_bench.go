package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/benchrun"
	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:     "bench",
		summary:  "benchmark the whole pipeline on this machine (sustained rates with freshness, backlog drain, RSS)",
		sections: []config.Section{config.SecPostgres, config.SecKafka, config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var rates, out, work, addr, commit, extra string
			var phase time.Duration
			var drain int
			l.String(&rates, "rates", "500,1500,4000", "sustained phases: offered orders/s, comma-separated (one order is about 6.5 row changes)")
			l.Duration(&phase, "phase", 30*time.Second, "length of each sustained phase")
			l.Int(&drain, "drain-changes", 1_000_000, "backlog size of the drain phase, in row changes (0: skip)")
			l.String(&out, "out", "bench/results", "directory for results (JSON and markdown)")
			l.String(&work, "work-dir", ".local/bench", "scratch directory")
			l.String(&addr, "bench-http-addr", "127.0.0.1:18080", "HTTP address of the benchmarked orderflow run")
			l.String(&commit, "commit", "", "commit recorded with the results")
			l.String(&extra, "extra", "", "comma-separated `go test -bench` output files whose custom metrics (report latency, backfill rows/s) are merged into the results")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, _ []string) error {
				var rs []float64
				for _, s := range strings.Split(rates, ",") {
					if s = strings.TrimSpace(s); s == "" {
						continue
					}
					r, err := strconv.ParseFloat(s, 64)
					if err != nil || r <= 0 {
						return usageErrorf("-rates: %q is not a positive number", s)
					}
					rs = append(rs, r)
				}
				bin, err := os.Executable()
				if err != nil {
					return err
				}
				res, err := benchrun.Run(ctx, benchrun.Options{
					Bin: bin, AdminPGURL: e.Cfg.Postgres.URL, Brokers: strings.Join(e.Cfg.Kafka.Brokers, ","),
					ChdbLib: e.Cfg.ClickHouse.ChdbLib, WorkDir: work, HTTPAddr: addr, Rates: rs, PhaseTime: phase,
					DrainChanges: drain, Commit: commit, Log: e.Log, Progress: e.Stderr,
				})
				if err != nil {
					return err
				}
				targets := map[string]string{"ms/median": "<= 500 ms", "fact_rows/s": ">= 250,000", "publish_rows/s": ""}
				for _, f := range strings.Split(extra, ",") {
					if f = strings.TrimSpace(f); f == "" {
						continue
					}
					fh, err := os.Open(f)
					if err != nil {
						return fmt.Errorf("-extra: %w", err)
					}
					res.Extra = append(res.Extra, benchrun.ParseGoBench(fh, targets)...)
					fh.Close()
				}
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				stamp := res.Date.Format("20060102T150405Z")
				js, _ := json.MarshalIndent(res, "", "  ")
				md := res.Markdown()
				for name, data := range map[string][]byte{stamp + ".json": js, stamp + ".md": []byte(md), "latest.json": js, "latest.md": []byte(md)} {
					if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
						return err
					}
				}
				fmt.Fprint(e.Stdout, md)
				fmt.Fprintf(e.Stdout, "\nresults: %s\n", filepath.Join(out, stamp+".{json,md}"))
				return nil
			}
		},
	})
}
