-- Fact: one row per order item (after FINAL) with the product's attributes
-- (as of the item's change) and the order's customer attributes (as of the
-- order's placement), for top-product, category and regional reports.
-- _version = the largest commit LSN of the order and item events the row was
-- built from; _is_deleted = 1 when the item or its order is deleted.
--
-- PARTITION BY month of placed_at (immutable, shared with customer_orders so
-- the two join partition-wise); ORDER BY (order_id, item_id): immutable dedup
-- key, and a line sits next to its order's other lines.
CREATE TABLE IF NOT EXISTS order_lines
(
    order_id         Int64,
    item_id          Int64,
    line_no          Int32,
    product_id       Int64,
    product_sku      String,
    product_name     String,
    product_category LowCardinality(String),
    quantity         Int32,
    unit_price       Decimal(18, 2),
    discount         Decimal(18, 2),
    line_total       Decimal(18, 2),
    customer_id      Int64,
    customer_segment LowCardinality(String),
    customer_region  LowCardinality(String),
    customer_country LowCardinality(String),
    campaign_id      Nullable(Int64),
    status           LowCardinality(String),
    placed_at        DateTime64(6, 'UTC'),
    _version         UInt64,
    _is_deleted      UInt8,
    INDEX idx_product product_id TYPE minmax GRANULARITY 4,
    INDEX idx_category product_category TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
PARTITION BY toYYYYMM(placed_at)
ORDER BY (order_id, item_id)
