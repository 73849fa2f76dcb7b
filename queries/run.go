package queries

import (
	"context"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// Result is a report's (or an analyst query's) answer.
type Result struct {
	Report  string            // report name; empty for analyst SQL
	Params  map[string]string // resolved parameters (canonical text)
	Columns []string
	Types   []string // ClickHouse type names
	Rows    [][]any
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
	res, err := eng.Query(ctx, r.SQL, ps)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	return &Result{Report: name, Params: resolved, Columns: res.Columns, Types: res.Types, Rows: res.Rows}, nil
}

// QuerySQL runs analyst SQL on eng's read-only session (sinks.QueryReadOnly):
// a SELECT works, a write is refused by the engine.
func QuerySQL(ctx context.Context, eng sinks.Engine, query string) (*Result, error) {
	res, err := sinks.QueryReadOnly(ctx, eng, query, nil)
	if err != nil {
		return nil, err
	}
	return &Result{Columns: res.Columns, Types: res.Types, Rows: res.Rows}, nil
}
