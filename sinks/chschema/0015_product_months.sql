-- Rollup of order_lines' sales: one row per calendar month (UTC) of
-- placed_at and product, with the sales containing the product (sum of
-- product_first), the units and the line totals. A sale is what every report
-- counts as one: not deleted, status not cancelled or refunded. Written only
-- by the rollup refresh (queries.RefreshRollup), month by month and as
-- generations (refresh_id), like customer_months; top_products reads the
-- months whose refresh is current from here (5,000 products: a few thousand
-- rows a month instead of ~800,000 order lines) and the rest from
-- order_lines FINAL.
CREATE TABLE IF NOT EXISTS product_months
(
    month      Date,
    product_id Int64,
    orders     UInt64,
    units      Int64,
    revenue    Decimal(38, 2),
    refresh_id UInt64
)
ENGINE = MergeTree
PARTITION BY (toYYYYMM(month), refresh_id)
ORDER BY product_id
