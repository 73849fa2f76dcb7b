-- One row per refresh of a rollup's month (customer_months, place_months,
-- product_months; read with FINAL: the latest refresh of each rollup and
-- month wins):
-- refresh_id is the generation of the rollup's rows it wrote, rows their
-- number, and facts_parts the fingerprint of the facts' month partition it
-- was computed from: the facts table's UUID and the sorted names of its
-- active parts (empty when the month had no facts). Part names are never
-- reused, so any insert, merge, mutation or table swap changes the
-- fingerprint, and the reports read that month from the facts until the
-- next refresh.
CREATE TABLE IF NOT EXISTS rollup_refreshes
(
    rollup       LowCardinality(String),
    month        Date,
    facts_parts  String,
    refresh_id   UInt64,
    rows         UInt64,
    refreshed_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
ORDER BY (rollup, month)
