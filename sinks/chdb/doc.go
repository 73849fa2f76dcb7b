// Package chdb is the embedded ClickHouse engine: libchdb.so (npm package
// @chdb/lib-linux-x64-gnu, 26.5.3) bound with purego, behind sinks.Engine.
//
// Contract:
//   - Loading: the library is dlopened by Open, never at init, so binaries
//     that use a ClickHouse server run without it. It stays loaded for the
//     life of the process.
//   - One data directory per process: libchdb boots one ClickHouse instance.
//     Any number of Engines may be open on it (each has its own chDB
//     connection and session, bound to its own database by USE); opening a
//     second directory fails until every Engine on the first is closed.
//     Another process must not open the same directory.
//   - Statements on one Engine run one at a time; Engines run concurrently.
//     A statement already inside libchdb is not interrupted by ctx (26.5 has
//     no cancel for non-streaming queries); ctx is checked before it starts.
//   - Insert: the batch is encoded once as one Native block (column-oriented;
//     LowCardinality declared as its base type), written to an in-memory
//     file (memfd, named /proc/self/fd/N; elsewhere a file in the data
//     directory) and loaded with INSERT ... FROM INFILE: one statement, one part
//     per partition, with optimize_on_insert = 0 (rows of one key in one
//     block are left for merges and FINAL to collapse). Transient engine errors (sinks.Retryable) are retried with
//     backoff; they are raised before the part is committed, so a retry cannot
//     double rows.
//   - InsertColumns takes the batch column by column as typed slices
//     ([]int64, []string, []time.Time, []sql.Null[T], sinks.Micros, ...):
//     nothing is boxed, and the block is byte for byte the one Insert builds
//     from the same values. The transformer writes this way.
//   - Query: results come back as JSONCompact (64-bit integers and decimals
//     quoted) and are decoded by the column types to int64, uint64, float64,
//     string (also Decimal, UUID, Enum), bool, time.Time (UTC unless the column
//     names a zone), nil, []any. Parameters are bound by
//     chdb_query_with_params_n, never spliced into SQL.
//   - Sessions run with session_timezone = 'UTC'.
//   - QueryReadOnly runs analyst SQL on a second session with readonly = 1:
//     the engine refuses writes, DDL, SET and file() with READONLY (164).
//   - Go's signal handlers survive: chdb_set_signal_handlers_enabled(0)
//     resets SIGSEGV/SIGBUS/SIGFPE/... to SIG_DFL, so they are restored.
//   - Works under the race detector (purego calls need cgo's runtime, which
//     -race has).
package chdb
