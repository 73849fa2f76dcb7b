-- Raw mirror of public.customers: one row per version of a customer as
-- captured, deduplicated by ReplacingMergeTree on the primary key. _version is
-- the commit LSN of the change that produced the row (a replayed older event
-- never wins), _is_deleted = 1 for a DELETE. Read with FINAL.
-- Not partitioned: a dimension is small and every report joins all of it.
CREATE TABLE IF NOT EXISTS raw_customers
(
    id          Int64,
    name        String,
    email       String,
    phone       Nullable(String),
    segment     LowCardinality(String),
    region      LowCardinality(String),
    country     LowCardinality(String),
    city        String,
    created_at  DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC'),
    _version    UInt64,
    _is_deleted UInt8,
    _commit_ts  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY id
