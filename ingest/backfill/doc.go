// Package backfill is `orderflow backfill`: a consistent, parallel,
// resumable snapshot of PostgreSQL published to the captured topics, so that
// the transformer loads it into ClickHouse (raw mirror, dimensions, facts)
// and streaming continues exactly where the snapshot ends.
//
// Consumes: the tables (--tables; default customers, products, campaigns,
// orders, order_items), each with a single-column integer primary key.
//
// Snapshot: a replication connection runs CREATE_REPLICATION_SLOT ...
// EXPORT_SNAPSHOT and stays idle while --workers connections each run
// BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT
// and COPY (SELECT ... WHERE key BETWEEN lo AND hi) TO STDOUT for
// --chunk-rows wide key ranges. Every worker sees the same database state:
// the one at the slot's consistent point C.
//   - Capture's slot (-pg-slot) does not exist yet: the backfill creates it
//     with the snapshot (and the publication first, which pgoutput needs
//     before the slot's start). Capture then streams every transaction that
//     committed after C and none before: no gap, no overlap.
//   - It exists (capture is running, or an earlier attempt created it): the
//     snapshot comes from a temporary slot. Capture's slot is older, so every
//     change after C is in the stream too; changes before C may be both in
//     the stream and in the snapshot, which is harmless (below).
//
// Emits: one envelope event per row, op "r", source.snapshot "true",
// source.lsn = _version = C - 1, keyed like capture's, to
// <prefix>.<schema>.<table> (created with --partitions when missing). Every
// transaction visible in the snapshot committed below C - 1 and every
// streamed transaction at or above C, so ReplacingMergeTree(_version) and the
// transformer's LSN-ordered state keep the newer of a snapshot row and a
// streamed change, whatever order they arrive in; a snapshot row never
// overwrites a newer row. Events are encoded from COPY's text output with
// capture's session settings (ISO dates, UTC), so they carry the same JSON
// values as streamed ones. Dimension tables are published before orders; an
// order range is published with the items of those orders (order_id in the
// range) in the same Kafka transaction, so the transformer never derives a
// snapshot order's fact without its items.
//
// As-of joins of snapshot rows: PostgreSQL keeps only a customer's current
// row, so the fact of an order that exists before the backfill carries the
// customer as of the snapshot (placement history older than the snapshot does
// not exist anywhere); orders placed after the snapshot's point are streamed
// and carry the customer as of their placement. TestReportsAfterBackfill
// (queries/) checks every report against its PostgreSQL oracle with exactly
// that rule, with writes running during the snapshot.
//
// Delivery and resume: each chunk is one Kafka transaction (a transactional
// producer per worker) that also writes the chunk's checkpoint to the
// compacted topic <prefix>._backfill_checkpoints; the run's plan (key ranges
// measured in the first snapshot) is written there before the first chunk. A
// chunk is therefore published exactly when its checkpoint is. Killed at any
// moment and started again with the same tables, the backfill fences the
// previous producers (their open transaction is aborted), reads the
// checkpoints read_committed, logs "chunk done, skipping" for every done
// chunk and copies only the others. The exported snapshot died with the
// killed process, so the rest is copied from a NEW snapshot C2 > C1: done
// chunks keep their rows at C1 - 1, the others carry C2 - 1, and every change
// committed between C1 and C2 is in the stream (capture's slot predates both),
// so the result is still exact, with exactly one snapshot event per row.
// Rows inserted after C1 above the planned key ranges are stream-only. A
// finished run is not repeated: running the command again starts a new run
// (--restart abandons an unfinished one).
//
// Direct mode (--direct, Options.Sink): the backfill also writes each
// chunk's ClickHouse rows itself, to the transformer's database: raw mirror,
// dimensions, customer history, customer_orders and order_lines, derived by
// the transformer's own code (pipeline.Snapshot; a test checks the rows are
// equal to the transformer's for the same events). Dimension rows are loaded
// first into a join state shared by the workers; each orders chunk is
// derived with its items in a state of its own, dropped after the chunk, so
// the backfill's memory is the dimension tables plus one chunk per worker.
// The rows are written before the chunk's Kafka transaction commits, so a
// chunk marked done has its rows in ClickHouse. The events still go to Kafka
// (replay and the transformer's state need them) with the header
// orderflow_loaded: the transformer applies them to its state only and
// writes no row for them; replay ignores the header. No change_log row is
// written for a snapshot read (it is not a change; it is in Kafka and in the
// raw mirror). Facts of pre-existing orders carry the customer as of the
// snapshot that copied them, the rule of the transformer too.
//   - Crash between the ClickHouse write and the Kafka commit: the chunk is
//     copied again from the new snapshot C2 at version C2 - 1, which
//     supersedes the dead attempt's rows. A row deleted between the two
//     snapshots is in neither the new snapshot nor the transformer's state
//     (the dead attempt's events were aborted), and its key-only delete
//     event cannot reach the facts' partition (placed_at), so a resumed
//     attempt re-inserts as deleted, at C2 - 1, every fact, line and raw
//     order of the chunk's range that an earlier attempt of the run wrote
//     and this snapshot no longer has (TestDirectBackfillCrashAfterWrite,
//     TestDirectBackfillKillResume).
//   - With the embedded engine one process owns the data directory: run the
//     direct backfill before starting the transformer (or stop it); the
//     command says so when the directory is locked. With a ClickHouse
//     server both can run at once.
//   - The dimension rows of chunks done by an earlier attempt, and of
//     dimension tables outside --tables, are copied again from this
//     attempt's snapshot into the join state only (no events, no rows).
//
// Progress: a line per table every --progress-interval on stderr (rows
// done/total, rows/s, ETA); metrics orderflow_backfill_rows_total{table} and
// orderflow_backfill_chunks_total{result}.
//
// Safe while the command API takes writes: the workers only read (one
// repeatable-read transaction each, which holds back VACUUM's horizon for the
// duration), and creating the slot waits only for transactions already in
// progress.
//
// With the transformer running: the transformer may apply a streamed change
// of a pre-existing order before that order's snapshot rows arrive. Customers
// arriving late re-derive the affected facts, and since pipeline commit
// 2246c9a so do item events that leave the order row alone, so the backfill
// can run while capture and the transformer run
// (TestBackfillWithTransformerRunning). Running it before the transformer
// starts remains the cheapest order: no fact is derived twice.
//
// Performance (BenchmarkBackfill; go test -run '^$' -bench BenchmarkBackfill
// -benchtime 1x -timeout 80m ./ingest/backfill/ with ORDERFLOW_BENCH_ORDERS,
// and ORDERFLOW_BENCH_DIRECT=1 for direct mode; 2 vCPU shared with the stack;
// 2026-11-24):
//   - 1M orders + 2.5M items + 100k customers, quiet box: plain COPY TO
//     STDOUT 637k rows/s (the ceiling), backfill to Kafka 304k rows/s (4
//     workers), every fact in chDB after 84 s = 41.8k fact rows/s.
//   - 10M orders + 25M items + 1M customers: COPY 617k rows/s, publish 263k
//     rows/s, facts 29.7k fact rows/s (1,178 s); the process running the
//     transformer and chDB peaked at 16.5 GB RSS (the transformer keeps every
//     order and item version in memory).
//   - Direct mode, 1M orders, quiet box: every fact in chDB after 40 s =
//     87.7k fact rows/s (2.1x); the transformer, started afterwards, applied
//     the 3.6M snapshot events to its state in 29 s (123k events/s).
//   - Direct mode, 10M orders: 75.9k fact rows/s (461 s, 2.55x); the
//     transformer's catch-up took 459 s and its state peaked at 15.9 GB
//     RSS (every order and item is still held once caught up).
//
// Still short of the 250k fact rows/s target. On two cores everything runs
// on the same box: PostgreSQL's COPY (~1.5 µs of CPU per row), the Kafka
// broker and producer, the derivation (~8 µs per fact row through the
// transformer's generic row code) and chDB's insert and merges (~3 µs per
// row inserted; raw mirror and facts make two rows per fact row). The
// backfill's own ceiling with the rows derived and dropped
// (ORDERFLOW_BENCH_DIRECT_DISCARD=1) is within 10 % of the figure with
// chDB, so the derivation, not ClickHouse, is the next thing to make
// cheaper.
//
// # When to use backfill or replay, and the Kafka retention they need
//
// Use `orderflow backfill` to load rows that exist in PostgreSQL but not in
// Kafka: the first start of the pipeline on a populated database, a table
// added to the publication, or topics that were lost. It reads PostgreSQL,
// not Kafka, so it needs no retention; it writes snapshot events to the same
// topics, so from then on the topics hold the full state.
//
// Use `orderflow replay` (pipeline/replay) to rebuild ClickHouse tables from
// what Kafka already holds: a bug fix in the derivation, a schema change of a
// fact table, a dropped or corrupted table, or facts of a date range to
// re-derive. It never reads PostgreSQL. It needs the full state in Kafka:
// dimension topics (customers, products, campaigns, order_items) and orders
// compacted (cleanup.policy=compact keeps the latest event per key forever;
// as-of joins then use the oldest version still held), or retained long
// enough to cover everything to rebuild (retention.ms=-1 for exact history);
// the change log and customer_history need the full history, so retain
// those topics (-1) if they are rebuilt. Replay refuses a topic whose log
// no longer starts at offset 0 (retention or DeleteRecords removed events,
// whose rows a rebuild would lack) and swaps nothing; run a backfill first
// (it republishes the current state), then replay with -allow-truncated-log.
package backfill
