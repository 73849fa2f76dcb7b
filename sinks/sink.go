// Package sinks holds the query side's storage engines behind one small
// interface: a ClickHouse server through clickhouse-go's native protocol
// (sinks/chserver) and the embedded chDB engine (sinks/chdb), chosen by
// config. Both run the same SQL. An Engine is bound to one database: every
// statement it runs resolves unqualified table names there.
package sinks

import (
	"context"
	"errors"
)

// Engine executes ClickHouse SQL in one database.
//
// Insert values are Go values: int8..int64, uint8..uint64, float64, string,
// bool, time.Time (DateTime/DateTime64/Date), nil for NULL in Nullable
// columns, []string for Array(String). Decimal columns take the exact decimal
// text as a string. Insert is one INSERT statement per call on both engines
// (one part per partition the rows touch) and is retried by the engine on
// transient errors; see each engine's doc for when a retry could write a
// block twice (only the server engine, after a connection lost mid-send).
type Engine interface {
	// Exec runs a statement that returns no rows (DDL, INSERT ... SELECT, ...).
	Exec(ctx context.Context, query string) error
	// Insert writes rows into table with an explicit column list.
	Insert(ctx context.Context, table string, columns []string, rows [][]any) error
	// Query runs a SELECT with typed parameters ({name:Type} placeholders,
	// values given as strings or Go values) and returns all rows.
	Query(ctx context.Context, query string, params map[string]any) (*Result, error)
	// Database is the database the engine is bound to.
	Database() string
	// Close releases the engine's connection.
	Close() error
}

// Result is a query's full result.
type Result struct {
	Columns []string // column names
	Types   []string // ClickHouse type names, e.g. "Decimal(18, 2)"
	Rows    [][]any  // values decoded to Go: int64/uint64/float64/string/bool/time.Time/nil/[]any; Decimal, UUID, Enum as string
}

// ReadOnlyQuerier is implemented by engines that can run untrusted analyst
// SQL with writes refused by the engine itself (readonly = 1).
type ReadOnlyQuerier interface {
	QueryReadOnly(ctx context.Context, query string, params map[string]any) (*Result, error)
}

// QueryReadOnly runs analyst SQL on e with readonly = 1: a SELECT works, an
// INSERT, ALTER, DROP, CREATE or SET is refused with ClickHouse's READONLY
// exception (code 164).
func QueryReadOnly(ctx context.Context, e Engine, query string, params map[string]any) (*Result, error) {
	ro, ok := e.(ReadOnlyQuerier)
	if !ok {
		return nil, errors.New("this engine cannot run read-only queries")
	}
	return ro.QueryReadOnly(ctx, query, params)
}
