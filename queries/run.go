package queries

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/orderflow/orderflow/sinks"
)

// Result is a report's (or an analyst query's) answer.
type Result struct {
	Report  string            // report name; empty for analyst SQL
	Params  map[string]string // resolved parameters (canonical text)
	Columns []string
	Types   []string // ClickHouse type names
	Rows    [][]any
	// Analyst SQL only: MaxRows is the cap the statement ran with, and
	// Truncated is set when it had more rows than that (Rows holds the
	// first MaxRows).
	MaxRows   int
	Truncated bool
	// @rollup reports: the months [first, end) read from the monthly rollup
	// ("YYYY-MM-DD"); equal when every row came from the facts.
	RollupMonths []string
}

// Run validates params against the named report, runs it on eng with typed
// query parameters and returns its rows. Relative date defaults are
// resolved against the current time.
func Run(ctx context.Context, eng sinks.Engine, name string, params map[string]string) (*Result, error) {
	return RunAt(ctx, eng, name, params, time.Now())
}

// RunAt is Run with relative defaults resolved against now.
func RunAt(ctx context.Context, eng sinks.Engine, name string, params map[string]string, now time.Time) (*Result, error) {
	r, err := Get(name)
	if err != nil {
		return nil, err
	}
	resolved, err := r.Resolve(params, now)
	if err != nil {
		return nil, err
	}
	ps := make(map[string]any, len(resolved))
	for k, v := range resolved {
		ps[k] = v
	}
	var months []string
	if r.Rollup != "" {
		from, err1 := time.Parse(time.DateOnly, resolved["from"])
		to, err2 := time.Parse(time.DateOnly, resolved["to"])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("report %s: from %q, to %q: not dates", name, resolved["from"], resolved["to"])
		}
		first, end, gens, err := rollups[r.Rollup].months(ctx, eng, from, to, r.RollupAllMonths)
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", name, err)
		}
		months = []string{first.Format(time.DateOnly), end.Format(time.DateOnly)}
		ps["rollup_from"], ps["rollup_to"], ps["rollup_ids"] = months[0], months[1], gens
		if gens == nil {
			ps["rollup_ids"] = []uint64{}
		}
	}
	res, err := eng.Query(ctx, r.SQL, ps)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	return &Result{Report: name, Params: resolved, Columns: res.Columns, Types: res.Types, Rows: res.Rows, RollupMonths: months}, nil
}

// DefaultMaxSQLRows is the most rows analyst SQL returns unless told
// otherwise: enough to read, small enough that `SELECT * FROM order_lines`
// cannot exhaust the process's memory.
const DefaultMaxSQLRows = 10_000

// QuerySQL runs analyst SQL on eng's read-only session (sinks.QueryReadOnly):
// a SELECT works, a write is refused by the engine. It returns at most
// maxRows rows (maxRows <= 0: DefaultMaxSQLRows) and sets Result.Truncated
// when the statement has more. A SELECT (or WITH ... SELECT) runs as
// SELECT * FROM (<query>) LIMIT maxRows + 1, so the engine stops after the
// cap instead of building the whole result in memory (the read-only session
// may not change max_result_rows); other statements (SHOW, DESCRIBE,
// EXPLAIN, ...) have small answers and are cut after the fact.
func QuerySQL(ctx context.Context, eng sinks.Engine, query string, maxRows int) (*Result, error) {
	if maxRows <= 0 {
		maxRows = DefaultMaxSQLRows
	}
	q := query
	if body, ok := selectBody(query); ok {
		q = "SELECT * FROM\n(\n" + body + "\n)\nLIMIT " + strconv.Itoa(maxRows+1)
	}
	res, err := sinks.QueryReadOnly(ctx, eng, q, nil)
	if err != nil {
		return nil, err
	}
	out := &Result{Columns: res.Columns, Types: res.Types, Rows: res.Rows, MaxRows: maxRows}
	if len(out.Rows) > maxRows {
		out.Rows, out.Truncated = out.Rows[:maxRows:maxRows], true
	}
	return out, nil
}

// selectBody returns query without trailing semicolons when it is a
// SELECT or WITH ... SELECT statement (after leading comments and
// parentheses): the statements that can be wrapped in a subquery.
func selectBody(query string) (string, bool) {
	s := query
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			_, rest, ok := strings.Cut(s, "\n")
			if !ok {
				return "", false
			}
			s = rest
			continue
		case strings.HasPrefix(s, "/*"):
			_, rest, ok := strings.Cut(s, "*/")
			if !ok {
				return "", false
			}
			s = rest
			continue
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(s)
	}
	if word := strings.ToUpper(s[:end]); word != "SELECT" && word != "WITH" {
		return "", false
	}
	body := strings.TrimRight(query, " \t\r\n;")
	return body, true
}
