package chdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/orderflow/orderflow/sinks"
)

var _ sinks.Engine = (*Engine)(nil)
var _ sinks.ReadOnlyQuerier = (*Engine)(nil)

// Options configures an embedded engine.
type Options struct {
	Lib      string // path of libchdb.so
	Path     string // data directory; one per process
	Database string // created when missing
	Log      *slog.Logger
	Backoff  sinks.Backoff // retries of transient engine errors; zero = sinks.DefaultBackoff
}

// Engine is a sinks.Engine on the embedded chDB engine. It holds its own
// chDB connection (its own session: current database and settings) to the
// process-wide engine; Engine values are safe for concurrent use and
// statements on one Engine run one at a time.
type Engine struct {
	lib     *lib
	path    string // absolute data directory
	db      string
	log     *slog.Logger
	backoff sinks.Backoff

	rw    *conn  // all statements except QueryReadOnly
	spool string // directory of batch files handed to INSERT ... FROM INFILE

	roMu sync.Mutex
	ro   *conn // opened on the first QueryReadOnly, SET readonly = 1

	typesMu sync.Mutex
	types   map[string]map[string]*chType // qualified table -> column -> type

	// bufs holds encode buffers of finished InsertColumns calls for the
	// next ones (a batch's block is copied into its memfd or spool file, then the
	// buffer is free): no block-sized allocation, and no regrowth, per insert.
	bufs chan []byte
}

// Encode buffers kept for reuse: at most maxSpareBufs, each at most
// maxSpareBuf bytes (a larger one is left to the GC).
const (
	maxSpareBufs = 2
	maxSpareBuf  = 64 << 20
)

// getBuf returns an empty buffer, reused when one is spare.
func (e *Engine) getBuf(size int) []byte {
	select {
	case b := <-e.bufs:
		return b[:0]
	default:
		return make([]byte, 0, size)
	}
}

// putBuf keeps b for a later getBuf (b must no longer be used).
func (e *Engine) putBuf(b []byte) {
	if cap(b) > maxSpareBuf {
		return
	}
	select {
	case e.bufs <- b:
	default:
	}
}

// process is the one chDB engine of this process: libchdb boots a single
// ClickHouse instance bound to one data directory. Any number of connections
// to that directory may be open; opening another directory requires closing
// them all first.
var process struct {
	mu    sync.Mutex
	path  string
	conns int
}

// conn is one chDB connection and its session state.
type conn struct {
	mu     sync.Mutex
	p      *uintptr // chdb_connection*
	cur    string   // current database of the session ("" = unknown)
	closed bool
}

// Open loads libchdb (on first use in the process), connects to the data
// directory and binds the engine to opts.Database, creating it when missing.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Database == "" {
		return nil, errors.New("open chdb: a database name is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff.Attempts == 0 {
		opts.Backoff = sinks.DefaultBackoff
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("open chdb: data directory %q: %w", opts.Path, err)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("open chdb: data directory: %w", err)
	}
	l, err := loadLib(opts.Lib)
	if err != nil {
		return nil, err
	}
	e := &Engine{lib: l, path: path, db: opts.Database, log: opts.Log.With("stage", "sink", "engine", "chdb", "database", opts.Database),
		backoff: opts.Backoff, types: map[string]map[string]*chType{}, bufs: make(chan []byte, maxSpareBufs)}
	e.spool = filepath.Join(path, "orderflow_spool")
	if err := os.MkdirAll(e.spool, 0o700); err != nil {
		return nil, fmt.Errorf("open chdb: spool directory: %w", err)
	}
	process.mu.Lock()
	if process.conns == 0 { // batches left by a process that died mid-insert
		stale, _ := filepath.Glob(filepath.Join(e.spool, "insert-*.native"))
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	process.mu.Unlock()
	if e.rw, err = e.connect(path); err != nil {
		return nil, err
	}
	if _, err := e.rw.run(l, "CREATE DATABASE IF NOT EXISTS "+sinks.QuoteIdent(e.db), "TSV", nil); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("open chdb: create database %s: %w", e.db, err)
	}
	e.log.Debug("chdb engine open", "path", path)
	return e, nil
}

// sessionSettings are set on every connection: results in UTC, 64-bit
// integers and decimals quoted in JSON so that no digit is lost.
// max_query_size is raised because libchdb counts an INSERT's inline data
// against it (the default 256 KiB cut RowBinary batches short).
const sessionSettings = "SET session_timezone = 'UTC', max_query_size = 4294967296, output_format_json_quote_64bit_integers = 1, " +
	"output_format_json_quote_decimals = 1, output_format_json_quote_denormals = 1"

func (e *Engine) connect(path string) (*conn, error) {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.conns > 0 && process.path != path {
		return nil, fmt.Errorf("open chdb %s: this process already has the embedded engine open on %s; "+
			"one process holds one chDB data directory (close every engine first)", path, process.path)
	}
	if process.conns == 0 {
		// Keep Go's signal handlers: chDB would otherwise install its own
		// (SIGSEGV, SIGINT, ...) over the Go runtime's. Disabling them resets
		// the crash signals to SIG_DFL, so Go's are put back around it too.
		preserveGoSignals(func() { e.lib.setSignalHandlers(0) })
	}
	args := []string{"orderflow", "--path=" + path}
	bufs := make([][]byte, len(args))
	argv := make([]*byte, len(args))
	for i, a := range args {
		bufs[i] = append([]byte(a), 0)
		argv[i] = &bufs[i][0]
	}
	var p *uintptr
	preserveGoSignals(func() { p = e.lib.connect(int32(len(argv)), unsafe.Pointer(&argv[0])) })
	runtime.KeepAlive(bufs)
	if p == nil || *p == 0 {
		return nil, fmt.Errorf("open chdb %s: chdb_connect failed (is another process using this data directory? see its clickhouse logs)", path)
	}
	process.path = path
	process.conns++
	c := &conn{p: p}
	if _, err := c.run(e.lib, sessionSettings, "TSV", nil); err != nil {
		e.closeConn(c)
		return nil, fmt.Errorf("open chdb %s: session settings: %w", path, err)
	}
	return c, nil
}

func (e *Engine) closeConn(c *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	e.lib.closeConn(c.p)
	process.mu.Lock()
	process.conns--
	process.mu.Unlock()
}

// Database is the database the engine is bound to.
func (e *Engine) Database() string { return e.db }

// Close closes the engine's connections. The library stays loaded.
func (e *Engine) Close() error {
	e.closeConn(e.rw)
	e.roMu.Lock()
	if e.ro != nil {
		e.closeConn(e.ro)
	}
	e.roMu.Unlock()
	return nil
}

// params is a query's parameters rendered as text.
type params struct{ names, values [][]byte }

func renderParams(ps map[string]any) (*params, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := &params{}
	for k, v := range ps {
		s, err := sinks.FormatParam(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
		out.names = append(out.names, []byte(k))
		out.values = append(out.values, []byte(s))
	}
	return out, nil
}

// useRe finds statements that may change the session's current database.
var useRe = regexp.MustCompile(`(?i)\buse\b`)

// run executes one query text on the connection in the given output format
// and returns the output. db, when not empty, is made current first.
func (c *conn) runIn(l *lib, db, query, format string, ps *params) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("chdb engine is closed")
	}
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("empty query")
	}
	if db != "" && c.cur != db {
		if _, err := c.call(l, "USE "+sinks.QuoteIdent(db), "TSV", nil); err != nil {
			return nil, err
		}
		c.cur = db
	}
	if useRe.MatchString(query) {
		c.cur = "" // the statement may switch databases; re-USE next time
	}
	return c.call(l, query, format, ps)
}

func (c *conn) run(l *lib, query, format string, ps *params) ([]byte, error) {
	return c.runIn(l, "", query, format, ps)
}

// call is the only place that enters libchdb for a statement. c.mu is held.
func (c *conn) call(l *lib, query, format string, ps *params) ([]byte, error) {
	q := unsafe.StringData(query)
	f := append([]byte(format), 0)
	var res uintptr
	if ps == nil {
		res = l.queryN(*c.p, unsafe.Pointer(q), uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	} else {
		n := len(ps.names)
		names, values := make([]*byte, n), make([]*byte, n)
		nameLens, valueLens := make([]uintptr, n), make([]uintptr, n)
		for i := range n {
			names[i], nameLens[i] = unsafe.SliceData(ps.names[i]), uintptr(len(ps.names[i]))
			values[i], valueLens[i] = unsafe.SliceData(ps.values[i]), uintptr(len(ps.values[i]))
		}
		res = l.queryWithParamsN(*c.p, unsafe.Pointer(q), uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)),
			unsafe.Pointer(&names[0]), unsafe.Pointer(&nameLens[0]), unsafe.Pointer(&values[0]), unsafe.Pointer(&valueLens[0]), uintptr(n))
		runtime.KeepAlive(ps)
		runtime.KeepAlive(names)
		runtime.KeepAlive(values)
		runtime.KeepAlive(nameLens)
		runtime.KeepAlive(valueLens)
	}
	runtime.KeepAlive(query)
	runtime.KeepAlive(f)
	if res == 0 {
		return nil, errors.New("chdb returned no result")
	}
	defer l.destroyResult(res)
	if msg := l.resultError(res); msg != "" {
		return nil, parseException(msg)
	}
	n := l.resultLength(res)
	if n == 0 {
		return nil, nil
	}
	return append([]byte(nil), unsafe.Slice(l.resultBuffer(res), n)...), nil
}

var codeRe = regexp.MustCompile(`^Code: (\d+)\. `)
var nameRe = regexp.MustCompile(`\(([A-Z_0-9]+)\)\s*$`)

// parseException turns chDB's error text ("Code: 60. DB::Exception: ...
// (UNKNOWN_TABLE)") into a *sinks.Exception.
func parseException(msg string) error {
	msg = strings.TrimSpace(msg)
	ex := &sinks.Exception{Message: msg}
	if m := codeRe.FindStringSubmatch(msg); m != nil {
		c, _ := strconv.Atoi(m[1])
		ex.Code = int32(c)
	}
	if m := nameRe.FindStringSubmatch(msg); m != nil {
		ex.Name = m[1]
	}
	return ex
}

// retry runs a statement with the engine's backoff on transient errors.
func (e *Engine) retry(ctx context.Context, what string, op func() error) error {
	return e.backoff.Retry(ctx, sinks.Retryable, func(attempt int, err error) {
		e.log.Warn("retrying", "op", what, "attempt", attempt, "err", err)
	}, op)
}

// Exec runs a statement that returns no rows.
func (e *Engine) Exec(ctx context.Context, query string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.typesMu.Lock()
	clear(e.types) // DDL may change column types
	e.typesMu.Unlock()
	if _, err := e.rw.runIn(e.lib, e.db, query, "TSV", nil); err != nil {
		return fmt.Errorf("chdb exec: %w", err)
	}
	return nil
}

// Query runs a query with typed parameters and returns all rows.
func (e *Engine) Query(ctx context.Context, query string, ps map[string]any) (*sinks.Result, error) {
	return e.query(ctx, e.rw, query, ps)
}

func (e *Engine) query(ctx context.Context, c *conn, query string, ps map[string]any) (*sinks.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := renderParams(ps)
	if err != nil {
		return nil, fmt.Errorf("chdb query: %w", err)
	}
	out, err := c.runIn(e.lib, e.db, query, "JSONCompact", p)
	if err != nil {
		return nil, fmt.Errorf("chdb query: %w", err)
	}
	res, err := decodeJSONCompact(out)
	if err != nil {
		return nil, fmt.Errorf("chdb query: %w", err)
	}
	return res, nil
}

// QueryReadOnly runs analyst SQL on a separate session with readonly = 1:
// the engine itself refuses INSERT, ALTER, DROP, CREATE, SET, file() and
// other writes (exception READONLY, code 164).
func (e *Engine) QueryReadOnly(ctx context.Context, query string, ps map[string]any) (*sinks.Result, error) {
	e.roMu.Lock()
	if e.ro == nil {
		c, err := e.connect(e.path)
		if err == nil {
			if _, err = c.run(e.lib, "SET readonly = 1", "TSV", nil); err != nil {
				e.closeConn(c)
			}
		}
		if err != nil {
			e.roMu.Unlock()
			return nil, fmt.Errorf("chdb read-only session: %w", err)
		}
		e.ro = c
	}
	c := e.ro
	e.roMu.Unlock()
	c.mu.Lock()
	c.cur = "" // analyst SQL may have switched databases; always re-USE
	c.mu.Unlock()
	return e.query(ctx, c, query, ps)
}

// Insert writes rows with an explicit column list, encoded once as a
// Native block. Transient engine errors (TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED,
// ...) are retried: they are raised before the part is committed, so a retry
// cannot double rows.
func (e *Engine) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	if len(columns) == 0 {
		return fmt.Errorf("insert %s: an explicit column list is required", table)
	}
	qt := sinks.QualifiedTable(e.db, table)
	types, err := e.columnTypes(ctx, table, qt, columns)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	// The batch is encoded once as one Native block and handed to the
	// engine as a file (FROM INFILE). Two other transports were measured and
	// rejected with libchdb 26.5.3: inline data after "FORMAT Native" in the
	// query text is cut short by the multi-statement splitter (at "\n\n"
	// inside binary data), and a String query parameter read by format()
	// runs at ~45k rows/s for 20-column rows.
	raw, err := encodeNative(make([]byte, 0, len(rows)*len(columns)*8), types, columns, rows)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	return e.insertBlock(ctx, table, qt, columns, raw, len(rows))
}

// insertBlock loads an encoded Native block of n rows into qt.
func (e *Engine) insertBlock(ctx context.Context, table, qt string, columns []string, raw []byte, n int) error {
	name, release, err := e.spoolBlock(raw)
	if err != nil {
		return fmt.Errorf("insert %s: spool batch: %w", table, err)
	}
	defer release()
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(qt)
	sb.WriteString(" (")
	for i, c := range columns {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(sinks.QuoteIdent(c))
	}
	sb.WriteString(") FROM INFILE ")
	sb.WriteString(sinks.QuoteString(name))
	// optimize_on_insert = 0: the engine does not run the table engine's
	// merge (replacing) over each inserted block. Rows of one key in one
	// block then stay until a merge or FINAL collapses them, which is what
	// every reader relies on anyway; the transformer's batches carry one
	// row per key. It cut the drain's process CPU about 11 %
	// (BenchmarkDrain, 400k orders: 20.5-20.6 -> 18.3-18.4 µs per fact row).
	sb.WriteString(" SETTINGS optimize_on_insert = 0 FORMAT Native")
	query := sb.String()
	err = e.retry(ctx, "insert "+table, func() error {
		_, err := e.rw.runIn(e.lib, e.db, query, "TSV", nil)
		return err
	})
	if err != nil {
		e.typesMu.Lock()
		delete(e.types, qt)
		e.typesMu.Unlock()
		return fmt.Errorf("insert %s (%d rows): %w", table, n, err)
	}
	return nil
}

// columnTypes returns the types of columns of table, from a per-table cache
// filled from system.columns.
func (e *Engine) columnTypes(ctx context.Context, table, qt string, columns []string) ([]*chType, error) {
	e.typesMu.Lock()
	byName, ok := e.types[qt]
	e.typesMu.Unlock()
	if !ok {
		db, tbl := e.db, table
		if d, t, found := strings.Cut(table, "."); found {
			db, tbl = d, t
		}
		res, err := e.Query(ctx, "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
			map[string]any{"db": db, "t": tbl})
		if err != nil {
			return nil, fmt.Errorf("read column types: %w", err)
		}
		if len(res.Rows) == 0 {
			return nil, &sinks.Exception{Code: 60, Name: "UNKNOWN_TABLE", Message: fmt.Sprintf("table %s.%s does not exist", db, tbl)}
		}
		byName = make(map[string]*chType, len(res.Rows))
		for _, r := range res.Rows {
			t, err := parseType(r[1].(string))
			if err != nil {
				return nil, err
			}
			byName[r[0].(string)] = t
		}
		e.typesMu.Lock()
		e.types[qt] = byName
		e.typesMu.Unlock()
	}
	out := make([]*chType, len(columns))
	for i, c := range columns {
		t, ok := byName[c]
		if !ok {
			return nil, &sinks.Exception{Code: 16, Name: "NO_SUCH_COLUMN_IN_TABLE", Message: fmt.Sprintf("table %s has no column %q", qt, c)}
		}
		if t.kind == kUnsupported {
			return nil, fmt.Errorf("column %s has type %s, which the embedded engine's Insert does not encode", c, t.String())
		}
		out[i] = t
	}
	return out, nil
}
