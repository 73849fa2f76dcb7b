// Package capture is `orderflow capture`: PostgreSQL logical replication
// (pgoutput, protocol v2 with streaming of large in-progress transactions)
// to Kafka, every committed change once, in commit order.
//
// Consumes: one logical replication slot (-pg-slot, created if missing) over
// one publication (-pg-publication, created if missing; a least-privilege
// role relies on setup.sql / `orderflow capture -setup`). Relation messages
// are followed, so ADD/DROP COLUMN apply to the next event without a restart.
// Transactions larger than logical_decoding_work_mem arrive streamed: their
// chunks are spooled to an unlinked temporary file per transaction (a rolled
// back savepoint truncates it) and produced at Stream Commit, so memory does
// not grow with transaction size. Heartbeats (pg_logical_emit_message) keep the
// slot moving while the published tables are idle.
//
// Emits: one topic per table, <prefix>.<schema>.<table> (created with
// -capture-partitions partitions; records keyed by the primary key, so the
// default hash partitioner keeps per-key order), values in the envelope of
// package internal/envelope (op c/u/d; an UPDATE that changes the primary key
// becomes a delete of the old key and a create of the new one; TRUNCATE is not
// emitted). Unchanged TOAST columns are left out of "after" and listed in
// "unchanged", never replaced by a placeholder. Headers: lsn, commit_ts_ms,
// txid. A change that cannot be encoded (a column type capture does not
// decode, a malformed value) goes to <prefix>.dlq with its reason in the value
// and the "reason" header; capture goes on.
//
// Guarantee: exactly once into Kafka, in commit order. Events are produced
// into Kafka transactions (transactional producer, acks=all) that cover one or
// more whole PostgreSQL transactions, committed in commit-LSN order; each
// Kafka transaction also writes the end LSN of its last PostgreSQL transaction
// to the compacted topic <prefix>._capture_checkpoints. On start capture fences
// its previous incarnation (same transactional ID), reads that checkpoint
// (read_committed) and skips every transaction at or before it, so a crash at
// any moment neither loses nor duplicates a change for read_committed readers.
//
// Acknowledges: the flushed LSN in the standby status sent to PostgreSQL is
// the end of the last PostgreSQL transaction whose Kafka transaction has
// committed (or a position passed while nothing was pending), never the
// received LSN. Status goes out at least every -capture-status-interval and
// at once when a keepalive asks for a reply.
package capture
