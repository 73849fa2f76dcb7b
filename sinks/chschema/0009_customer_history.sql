-- Every version of every customer, valid from the commit LSN (and commit time)
-- of the change that produced it until the next version's. "State as of T":
--   SELECT ... FROM customer_history FINAL
--   WHERE valid_from <= T ORDER BY customer_id, valid_from_lsn DESC LIMIT 1 BY customer_id
-- A DELETE is a version with _is_deleted = 1 (kept: history is append-only;
-- the engine's is_deleted argument is not used so deleted versions survive
-- FINAL). Ordered by (customer_id, valid_from_lsn): the dedup key, and what an
-- as-of lookup reads.
CREATE TABLE IF NOT EXISTS customer_history
(
    customer_id    Int64,
    valid_from_lsn UInt64,
    valid_from     DateTime64(6, 'UTC'),
    name           String,
    email          String,
    phone          Nullable(String),
    segment        LowCardinality(String),
    region         LowCardinality(String),
    country        LowCardinality(String),
    city           String,
    signup_at      DateTime64(6, 'UTC'),
    _version       UInt64,
    _is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(_version)
ORDER BY (customer_id, valid_from_lsn)
