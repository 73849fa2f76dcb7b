-- Fact: one row per order (after FINAL), denormalized for the reports.
-- Customer and campaign attributes are as of the order's placement (the
-- commit LSN of the order's INSERT), so a later segment or region change
-- does not move past sales. Status, lifecycle times and totals are the
-- order's latest. _version = the largest commit LSN of the order and item
-- events the row was built from; _is_deleted = 1 once the order is deleted.
--
-- PARTITION BY month of placed_at: sales-by-month, retention and campaign
-- reports filter on placement time, and placed_at never changes, so every
-- version of an order lands in the same partition (a requirement for
-- ReplacingMergeTree to deduplicate). ORDER BY order_id: the dedup key must
-- be immutable (segment/status are not); order ids grow with time, so the
-- sort also clusters by placement within a month. Skip indexes help the
-- segment/region/status filters.
CREATE TABLE IF NOT EXISTS customer_orders
(
    order_id           Int64,
    customer_id        Int64,
    customer_name      String,
    customer_email     String,
    customer_segment   LowCardinality(String),
    customer_region    LowCardinality(String),
    customer_country   LowCardinality(String),
    customer_city      String,
    customer_signup_at DateTime64(6, 'UTC'),
    customer_version   UInt64,
    campaign_id        Nullable(Int64),
    campaign_code      LowCardinality(String),
    status             LowCardinality(String),
    currency           LowCardinality(String),
    placed_at          DateTime64(6, 'UTC'),
    paid_at            Nullable(DateTime64(6, 'UTC')),
    shipped_at         Nullable(DateTime64(6, 'UTC')),
    delivered_at       Nullable(DateTime64(6, 'UTC')),
    cancelled_at       Nullable(DateTime64(6, 'UTC')),
    refunded_at        Nullable(DateTime64(6, 'UTC')),
    item_count         UInt32,
    units              UInt32,
    subtotal           Decimal(18, 2),
    discount           Decimal(18, 2),
    total              Decimal(18, 2),
    updated_at         DateTime64(6, 'UTC'),
    _version           UInt64,
    _is_deleted        UInt8,
    INDEX idx_segment customer_segment TYPE set(64) GRANULARITY 4,
    INDEX idx_region customer_region TYPE set(256) GRANULARITY 4,
    INDEX idx_status status TYPE set(16) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
PARTITION BY toYYYYMM(placed_at)
ORDER BY order_id
