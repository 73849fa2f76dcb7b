-- Append-only log of every change event (audit, "state as of T", rebuild).
-- Rows are never updated. The engine is ReplacingMergeTree without a version
-- only so that a redelivered event (replay, retry after a crash) collapses
-- into the original: event_id is a hash of the event's content, so two
-- distinct changes of one row in one transaction (same commit LSN) both stay.
-- ORDER BY (table_name, key, lsn, event_id): the history of one row is
-- contiguous and in commit order. PARTITION BY month of the commit time so
-- old months can be dropped or moved to cheaper storage.
CREATE TABLE IF NOT EXISTS change_log
(
    table_name LowCardinality(String),
    key        String,
    op         LowCardinality(String),
    lsn        UInt64,
    txid       Int64,
    commit_ts  DateTime64(6, 'UTC'),
    before     String,
    after      String,
    event_id   UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(commit_ts)
ORDER BY (table_name, key, lsn, event_id)
