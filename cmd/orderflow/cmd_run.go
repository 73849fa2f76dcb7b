package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
)

// runParts are the subcommands `orderflow run` starts in one process, in
// start-up order: the command API first (it can migrate PostgreSQL), then
// capture, then the transformer, then the report and SQL API.
var runParts = []string{"api", "capture", "transform", "reports-api"}

func init() {
	register(&command{
		name:     "run",
		summary:  "all in one process: command API, capture, transformer, report and SQL API, metrics on one port",
		sections: []config.Section{config.SecHTTP, config.SecPostgres, config.SecKafka, config.SecClickHouse, config.SecAPI},
		serve:    true,
		setup:    setupRun,
	})
}

type runPart struct {
	name string
	cfg  *config.Config
	run  runFunc
}

// setupRun binds every part's own flags on run's flag set (a flag several
// parts share is set in all of them); the shared sections (PostgreSQL, Kafka,
// ClickHouse, HTTP, API, logging) come from run's own configuration.
func setupRun(l *config.Loader, _ *config.Config) runFunc {
	var parts []*runPart
	var subsets []*flag.FlagSet
	for _, name := range runParts {
		cmd, ok := commands[name]
		if !ok {
			continue
		}
		p := &runPart{name: name, cfg: new(config.Config)}
		fs, _, run := cmd.flags(p.cfg, l.Getenv())
		p.run = run
		parts = append(parts, p)
		subsets = append(subsets, fs)
	}
	own := l.FlagSet()
	for _, fs := range subsets {
		fs.VisitAll(func(f *flag.Flag) {
			if own.Lookup(f.Name) != nil {
				return // a shared section flag, or already mirrored
			}
			set := func(v string) error {
				for _, other := range subsets {
					if other.Lookup(f.Name) != nil {
						if err := other.Set(f.Name, v); err != nil {
							return err
						}
					}
				}
				return nil
			}
			usage := fmt.Sprintf("%s (default %q)", f.Usage, f.DefValue)
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				own.BoolFunc(f.Name, usage, set)
			} else {
				own.Func(f.Name, usage, set)
			}
		})
	}
	var skip string
	l.String(&skip, "run-skip", "", "comma-separated parts not to start: "+strings.Join(runParts, ", "))
	return func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error {
		if len(args) > 0 {
			return usageErrorf("run takes no arguments, got %q", strings.Join(args, " "))
		}
		skipped := map[string]bool{}
		for _, s := range strings.Split(skip, ",") {
			if s = strings.TrimSpace(s); s != "" {
				skipped[s] = true
			}
		}
		for _, p := range parts {
			if skipped[p.name] {
				e.Log.Info("part skipped", "part", p.name)
				continue
			}
			*p.cfg = *e.Cfg
			sub := &Env{Cfg: p.cfg, Log: e.Log, Reg: e.Reg, HTTP: e.HTTP, Stdout: e.Stdout, Stderr: e.Stderr}
			e.Log.Info("starting", "part", p.name)
			if err := p.run(ctx, g, sub, nil); err != nil {
				return fmt.Errorf("start %s: %w", p.name, err)
			}
		}
		return nil
	}
}
