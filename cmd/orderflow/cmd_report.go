package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/queries"
)

// reportFlags are the report subcommand's own settings.
type reportFlags struct {
	list     bool
	from, to string
	params   []string
	format   string
}

// bind puts the flags on a plain flag set too: flags may follow the report
// name (orderflow report daily_sales --from ...), where the loader's flag
// set has stopped parsing.
func (f *reportFlags) bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.list, "list", f.list, "")
	fs.StringVar(&f.from, "from", f.from, "")
	fs.StringVar(&f.to, "to", f.to, "")
	fs.StringVar(&f.format, "format", f.format, "")
	fs.Func("param", "", func(s string) error { f.params = append(f.params, s); return nil })
}

// parseTrailing parses flags given after the positional arguments; it
// returns the positional arguments.
func parseTrailing(args []string, bind func(*flag.FlagSet)) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		bind(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
	}
	return pos, nil
}

func init() {
	register(&command{
		name:     "report",
		summary:  "run a prebuilt report on the embedded engine: --list, or <name> --from --to [--param k=v] [--format table|csv|json]",
		args:     "[<report>]",
		sections: []config.Section{config.SecClickHouse},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var f reportFlags
			l.Bool(&f.list, "list", false, "list the reports with their parameters and columns")
			l.String(&f.from, "from", "", "first day of the period, YYYY-MM-DD or today-N{d,w,m,y} (UTC, inclusive; default: the report's)")
			l.String(&f.to, "to", "", "last day of the period (UTC, inclusive; default: the report's)")
			l.Multi(&f.params, "param", "another report parameter as name=value, e.g. --param n=20")
			l.String(&f.format, "format", "table", "output: table, csv or json")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				args, err := parseTrailing(args, f.bind)
				if err != nil {
					return usageErrorf("%v", err)
				}
				switch f.format {
				case "table", "csv", "json":
				default:
					return usageErrorf("--format %q is not table, csv or json", f.format)
				}
				if f.list {
					if len(args) > 0 {
						return usageErrorf("--list takes no report name")
					}
					return listReports(e.Stdout, f.format)
				}
				if len(args) != 1 {
					return usageErrorf("give one report name (orderflow report --list shows them), got %d arguments", len(args))
				}
				rep, err := queries.Get(args[0])
				if err != nil {
					return usageErrorf("%v", err)
				}
				params := map[string]string{}
				if f.from != "" {
					params["from"] = f.from
				}
				if f.to != "" {
					params["to"] = f.to
				}
				for _, kv := range f.params {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usageErrorf("--param %q: want name=value", kv)
					}
					params[k] = v
				}
				// validate before opening the engine: a bad parameter is a usage error
				if _, err := rep.Resolve(params, nowFunc()); err != nil {
					return usageErrorf("%v", err)
				}
				eng, err := openSink(ctx, e)
				if err != nil {
					return err
				}
				defer eng.Close()
				res, err := queries.RunAt(ctx, eng, rep.Name, params, nowFunc())
				if err != nil {
					var pe *queries.ParamError
					if errors.As(err, &pe) {
						return usageErrorf("%v", err)
					}
					return err
				}
				return queries.Write(e.Stdout, res, f.format)
			}
		},
	})
}

// listReports prints every report with its parameters and columns.
func listReports(w io.Writer, format string) error {
	if format == "json" {
		return queries.WriteJSON(w, reportList())
	}
	if format == "csv" {
		return queries.WriteCSV(w, reportList())
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range queries.List() {
		fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.Question)
		for _, p := range r.Params {
			def := "required"
			if !p.Required() {
				def = "default " + p.Default
			}
			fmt.Fprintf(tw, "\t  --%s (%s, %s): %s\n", paramFlag(p.Name), p.Type, def, p.Doc)
		}
	}
	return tw.Flush()
}

func paramFlag(name string) string {
	if name == "from" || name == "to" {
		return name
	}
	return "param " + name + "="
}

// reportList is the report list as a result (for csv/json).
func reportList() *queries.Result {
	res := &queries.Result{Columns: []string{"name", "title", "question", "params", "columns"},
		Types: []string{"String", "String", "String", "String", "String"}}
	for _, r := range queries.List() {
		var ps, cs []string
		for _, p := range r.Params {
			s := p.Name + " " + p.Type
			if !p.Required() {
				s += " = " + p.Default
			}
			ps = append(ps, s)
		}
		for _, c := range r.Columns {
			cs = append(cs, c.Name)
		}
		res.Rows = append(res.Rows, []any{r.Name, r.Title, r.Question, strings.Join(ps, "; "), strings.Join(cs, ", ")})
	}
	return res
}
