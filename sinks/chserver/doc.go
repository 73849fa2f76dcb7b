// Package chserver is the ClickHouse server engine behind sinks.Engine,
// speaking the native protocol through clickhouse-go/v2.
//
// Contract:
//   - Insert: "INSERT INTO db.t (c1, c2, ...)" with an explicit column list
//     (required by clickhouse-go against 18.16), rows converted once into
//     typed column slices, sent as one block. A failed attempt is retried with
//     exponential backoff when the error is retryable (sinks.Retryable:
//     refused/reset/EOF/timeouts and the transient exception codes listed in
//     sinks/retry.go). A connection lost during Send leaves the block's fate
//     unknown; the retry may write it twice, which orderflow's
//     ReplacingMergeTree tables (read with FINAL) absorb.
//   - Reconnect: the pool drops broken connections and redials; a restarted
//     server is picked up by the next retry (tested by killing a private
//     18.16 server mid-stream).
//   - Exec and Query are retried the same way; Exec statements must be
//     idempotent (IF [NOT] EXISTS).
//   - Query parameters ({name:Type}) are sent as server-side query
//     parameters. They, DateTime64, LowCardinality, Bool, CREATE USER,
//     is_deleted and the report SQL need a current ClickHouse (19.x+ for
//     parameters, 20.5+ for users; the compose file pins 25.8). Debian's 18.16
//     is used here only for the wire path: batches, types it has, errors,
//     reconnects.
//   - QueryReadOnly sets readonly = 1 on the query.
//   - Errors from the server become *sinks.Exception (Code, Message).
package chserver
