package chserver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/orderflow/orderflow/sinks"
)

var _ sinks.Engine = (*Engine)(nil)
var _ sinks.ReadOnlyQuerier = (*Engine)(nil)

// Options configures a server engine.
type Options struct {
	Addr     string // host:port of the native protocol (9000)
	Database string // created when missing (unless the user may not)
	User     string
	Password string
	Log      *slog.Logger
	Backoff  sinks.Backoff // zero = sinks.DefaultBackoff
	// DialTimeout bounds one connection attempt (default 5s); ReadTimeout
	// one server response (default 5m).
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// MaxOpenConns is the pool size (default 8).
	MaxOpenConns int
}

// Engine is a sinks.Engine on a ClickHouse server through clickhouse-go's
// native protocol. The connection pool redials after a server restart; every
// statement is retried with exponential backoff on retryable errors
// (sinks.Retryable).
type Engine struct {
	conn    driver.Conn
	db      string
	log     *slog.Logger
	backoff sinks.Backoff
}

// Open connects to the server bound to opts.Database, creating the database
// first when the server says it does not exist. It waits up to ~10 s for a
// server that is still starting.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Database == "" {
		return nil, errors.New("open clickhouse server: a database name is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff.Attempts == 0 {
		opts.Backoff = sinks.DefaultBackoff
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 5 * time.Minute
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 8
	}
	if opts.User == "" {
		opts.User = "default"
	}
	e := &Engine{db: opts.Database, backoff: opts.Backoff,
		log: opts.Log.With("stage", "sink", "engine", "server", "addr", opts.Addr, "database", opts.Database)}
	// Opening waits up to ~10 s for a server that is starting; a wrong
	// address fails in that time, not after the statement retry budget.
	waiting := &Engine{log: e.log, backoff: sinks.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Attempts: 10}}
	ping := func() error {
		c, err := dial(opts, opts.Database)
		if err != nil {
			return err
		}
		err = waiting.retry(ctx, "ping", func() error { return c.Ping(ctx) })
		if err != nil {
			_ = c.Close()
			return err
		}
		e.conn = c
		return nil
	}
	err := ping()
	var ex *sinks.Exception
	if err != nil && errors.As(wrap(err), &ex) && ex.Code == 81 { // UNKNOWN_DATABASE
		// Create it through a connection bound to "default" (one bound to a
		// missing database is refused at handshake), then connect again.
		boot, derr := dial(opts, "default")
		if derr != nil {
			return nil, derr
		}
		cerr := waiting.retry(ctx, "create database", func() error {
			return boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+sinks.QuoteIdent(opts.Database))
		})
		_ = boot.Close()
		if cerr != nil {
			return nil, fmt.Errorf("open clickhouse server %s: create database %s: %w", opts.Addr, opts.Database, wrap(cerr))
		}
		err = ping()
	}
	if err != nil {
		return nil, fmt.Errorf("open clickhouse server %s database %s: %w", opts.Addr, opts.Database, wrap(err))
	}
	return e, nil
}

func dial(opts Options, db string) (driver.Conn, error) {
	c, err := clickhouse.Open(&clickhouse.Options{
		Addr:            []string{opts.Addr},
		Auth:            clickhouse.Auth{Database: db, Username: opts.User, Password: opts.Password},
		DialTimeout:     opts.DialTimeout,
		ReadTimeout:     opts.ReadTimeout,
		MaxOpenConns:    opts.MaxOpenConns,
		MaxIdleConns:    opts.MaxOpenConns,
		ConnMaxLifetime: time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse server %s: %w", opts.Addr, err)
	}
	return c, nil
}

// Database is the database the engine is bound to.
func (e *Engine) Database() string { return e.db }

// Close closes the connection pool.
func (e *Engine) Close() error { return e.conn.Close() }

// ServerVersion is the server's version, e.g. "18.16.1".
func (e *Engine) ServerVersion() (string, error) {
	v, err := e.conn.ServerVersion()
	if err != nil {
		return "", wrap(err)
	}
	return fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch), nil
}

// wrap turns a clickhouse-go server exception into a *sinks.Exception (so
// that sinks.Retryable and callers see one error type for both engines).
func wrap(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		msg := strings.TrimSpace(ex.Message)
		name := ex.CodeName // the native protocol sends the class (DB::Exception), not the code's name
		return &sinks.Exception{Code: ex.Code, Name: name,
			Message: fmt.Sprintf("code: %d, %s: %s", ex.Code, ex.Name, msg)}
	}
	return err
}

// retryable is sinks.Retryable plus the driver's own connection errors.
func retryable(err error) bool {
	return sinks.Retryable(wrap(err)) || errors.Is(err, sqldriver.ErrBadConn) ||
		errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.Is(err, clickhouse.ErrConnectionClosed)
}

func (e *Engine) retry(ctx context.Context, what string, op func() error) error {
	return e.backoff.Retry(ctx, retryable, func(attempt int, err error) {
		e.log.Warn("retrying", "op", what, "attempt", attempt, "err", err)
	}, op)
}

// Exec runs a statement that returns no rows. It is retried on transient
// errors, so it must be idempotent (DDL with IF [NOT] EXISTS).
func (e *Engine) Exec(ctx context.Context, query string) error {
	if err := e.retry(ctx, "exec", func() error { return e.conn.Exec(ctx, query) }); err != nil {
		return fmt.Errorf("clickhouse exec: %w", wrap(err))
	}
	return nil
}

// Query runs a query with typed parameters ({name:Type}, sent to the server
// as query parameters, never spliced into the SQL; a server older than 19.x
// rejects them) and returns all rows.
func (e *Engine) Query(ctx context.Context, query string, params map[string]any) (*sinks.Result, error) {
	return e.query(ctx, query, params, nil)
}

// QueryReadOnly runs analyst SQL with the readonly = 1 setting: the server
// refuses INSERT, ALTER, DROP, CREATE and SET (exception READONLY, 164).
// When the engine's user is itself read-only (a readonly profile), the server
// refuses to have the setting sent at all; the query then runs as is.
func (e *Engine) QueryReadOnly(ctx context.Context, query string, params map[string]any) (*sinks.Result, error) {
	res, err := e.query(ctx, query, params, clickhouse.Settings{"readonly": 1})
	var ex *sinks.Exception
	if err != nil && errors.As(err, &ex) && ex.Code == 164 && strings.Contains(ex.Message, "Cannot modify 'readonly' setting") {
		return e.query(ctx, query, params, nil)
	}
	return res, err
}

func (e *Engine) query(ctx context.Context, query string, params map[string]any, settings clickhouse.Settings) (*sinks.Result, error) {
	var opts []clickhouse.QueryOption
	if len(params) > 0 {
		ps := clickhouse.Parameters{}
		for k, v := range params {
			s, err := sinks.FormatParam(v)
			if err != nil {
				return nil, fmt.Errorf("clickhouse query: parameter %s: %w", k, err)
			}
			ps[k] = s
		}
		opts = append(opts, clickhouse.WithParameters(ps))
	}
	if settings != nil {
		opts = append(opts, clickhouse.WithSettings(settings))
	}
	qctx := clickhouse.Context(ctx, opts...)
	var res *sinks.Result
	err := e.retry(ctx, "query", func() error {
		var err error
		res, err = e.queryOnce(qctx, query)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse query: %w", wrap(err))
	}
	return res, nil
}

func (e *Engine) queryOnce(ctx context.Context, query string) (*sinks.Result, error) {
	rows, err := e.conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	res := &sinks.Result{Columns: rows.Columns(), Types: make([]string, len(cts)), Rows: [][]any{}}
	dest := make([]any, len(cts))
	for i, ct := range cts {
		res.Types[i] = ct.DatabaseTypeName()
	}
	for rows.Next() {
		for i, ct := range cts {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i := range dest {
			row[i] = normalize(dest[i])
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// Insert writes rows with an explicit column list (clickhouse-go on a
// 18.16 server requires one). The rows are converted once into typed
// column slices; each attempt prepares a batch, appends the columns and
// sends it. A failure before Send is always safe to retry. A connection lost
// during Send is retried too: the server may or may not have committed the
// block, so a retry can duplicate it — harmless for orderflow's
// ReplacingMergeTree tables read with FINAL, visible in a plain MergeTree.
func (e *Engine) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if len(columns) == 0 {
		return fmt.Errorf("insert %s: an explicit column list is required", table)
	}
	for i, r := range rows {
		if len(r) != len(columns) {
			return fmt.Errorf("insert %s: row %d has %d values for %d columns", table, i, len(r), len(columns))
		}
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(sinks.QualifiedTable(e.db, table))
	sb.WriteString(" (")
	for i, c := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(sinks.QuoteIdent(c))
	}
	sb.WriteString(")")
	query := sb.String()

	var slices []any // converted once, on the first attempt's column types
	err := e.retry(ctx, "insert "+table, func() error {
		batch, err := e.conn.PrepareBatch(ctx, query)
		if err != nil {
			return err
		}
		defer func() { _ = batch.Close() }()
		if slices == nil {
			if slices, err = convertColumns(batch, columns, rows); err != nil {
				return &terminal{err}
			}
		}
		for i, s := range slices {
			if err := batch.Column(i).Append(s); err != nil {
				return &terminal{fmt.Errorf("column %s: %w", columns[i], err)}
			}
		}
		return batch.Send()
	})
	if err != nil {
		var te *terminal
		if errors.As(err, &te) {
			err = te.err
		}
		return fmt.Errorf("insert %s (%d rows): %w", table, len(rows), wrap(err))
	}
	return nil
}

// terminal marks an error of the data (not the connection): never retried.
type terminal struct{ err error }

func (t *terminal) Error() string { return t.err.Error() }
func (t *terminal) Unwrap() error { return nil }

func convertColumns(batch driver.Batch, columns []string, rows [][]any) ([]any, error) {
	cols := batch.Columns()
	if len(cols) != len(columns) {
		return nil, fmt.Errorf("server expects %d columns, got %d", len(cols), len(columns))
	}
	out := make([]any, len(cols))
	vals := make([]any, len(rows))
	for j, c := range cols {
		t := parseColType(string(c.Type()))
		for i := range rows {
			vals[i] = rows[i][j]
		}
		s, at, err := columnSlice(t, vals)
		if err != nil {
			return nil, fmt.Errorf("row %d column %s (%s): %w", at, columns[j], t.raw, err)
		}
		out[j] = s
	}
	return out, nil
}
