-- Raw mirror of public.orders (see 0001 for the _version/_is_deleted contract).
-- Ordered by id only (the dedup key); orders are the big table, so it is
-- partitioned by the month of placed_at, which never changes for an order, so
-- all versions of one order meet in one partition and deduplicate.
CREATE TABLE IF NOT EXISTS raw_orders
(
    id           Int64,
    customer_id  Int64,
    campaign_id  Nullable(Int64),
    status       LowCardinality(String),
    currency     LowCardinality(String),
    subtotal     Decimal(18, 2),
    discount     Decimal(18, 2),
    total        Decimal(18, 2),
    placed_at    DateTime64(6, 'UTC'),
    paid_at      Nullable(DateTime64(6, 'UTC')),
    shipped_at   Nullable(DateTime64(6, 'UTC')),
    delivered_at Nullable(DateTime64(6, 'UTC')),
    cancelled_at Nullable(DateTime64(6, 'UTC')),
    refunded_at  Nullable(DateTime64(6, 'UTC')),
    created_at   DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC'),
    _version     UInt64,
    _is_deleted  UInt8,
    _commit_ts   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
PARTITION BY toYYYYMM(placed_at)
ORDER BY id
