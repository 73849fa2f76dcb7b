// Command orderflow is the one binary of the pipeline. main only wires: it
// loads the config once, builds the logger and the metrics registry, installs
// signal handling and runs the chosen subcommand's stages under an errgroup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/obs"
)

// Env is what a subcommand's run function receives.
type Env struct {
	Cfg    *config.Config
	Log    *slog.Logger
	Reg    *prometheus.Registry
	HTTP   *obs.Server // nil unless the command serves HTTP
	Stdout io.Writer
	Stderr io.Writer
}

// runFunc runs a subcommand with its positional arguments. Stages it starts
// go on g; it returns once they are started (or after doing its work).
type runFunc func(ctx context.Context, g *errgroup.Group, e *Env, args []string) error

// command is one subcommand. setup binds the command's own flags on the
// loader and returns the function that runs it.
type command struct {
	name     string
	summary  string
	args     string // positional arguments, for usage
	sections []config.Section
	serve    bool // start the HTTP server (metrics, health, stage handlers)
	setup    func(l *config.Loader, c *config.Config) runFunc
}

var commands = map[string]*command{}

// flags builds the command's flag set bound to cfg.
func (c *command) flags(cfg *config.Config, getenv func(string) string) (*flag.FlagSet, *config.Loader, runFunc) {
	fs := flag.NewFlagSet("orderflow "+c.name, flag.ContinueOnError)
	loader := config.Bind(fs, cfg, getenv, c.sections...)
	return fs, loader, c.setup(loader, cfg)
}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate subcommand " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs orderflow with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "orderflow: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	var cfg config.Config
	fs, loader, run := cmd.flags(&cfg, getenv)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: orderflow %s [flags] %s\n\n%s\n\nFlags (each also set by its ORDERFLOW_* environment variable):\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	if err := loader.Parse(&cfg, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "orderflow %s: %v\nRun 'orderflow %s --help' for usage.\n", cmd.name, err, cmd.name)
		return exitUsage
	}

	log := obs.NewLogger(stderr, cfg.Log.Level, cfg.Log.Format).With("cmd", cmd.name)
	reg := obs.NewRegistry()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	env := &Env{Cfg: &cfg, Log: log, Reg: reg, Stdout: stdout, Stderr: stderr}
	if cmd.serve {
		env.HTTP = obs.NewServer(cfg.HTTP.Addr, reg, log)
	}
	err := run(gctx, g, env, fs.Args())
	if err == nil && env.HTTP != nil {
		g.Go(func() error { return env.HTTP.Run(gctx) })
	}
	if err != nil {
		stop()
		_ = g.Wait()
	} else {
		err = g.Wait()
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
		if cmd.serve {
			log.Info("shut down cleanly")
		}
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "orderflow %s: %v\nRun 'orderflow %s --help' for usage.\n", cmd.name, err, cmd.name)
		return exitUsage
	default:
		log.Error("failed", "err", err)
		return exitError
	}
}

// errUsage marks an error in the command line found by a run function.
var errUsage = errors.New("usage")

func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("orderflow: PostgreSQL -> Kafka -> ClickHouse streaming analytics.\n\nUsage: orderflow <subcommand> [flags]\n\nSubcommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'orderflow <subcommand> --help' for its flags. Every flag has an ORDERFLOW_* environment variable.\n")
	_, _ = io.WriteString(w, b.String())
}
