-- Rollup of customer_orders' sales by place: one row per calendar month
-- (UTC) of placed_at and the customer's segment, region and country as of
-- placement, with the sales, their revenue, and the customers who bought as
-- a bitmap (groupBitmap of customer_id as UInt64, a one-to-one mapping), so
-- that distinct customers over several months and places are an exact
-- bitmap union instead of a distinct count over millions of rows. A sale is
-- what every report counts as one: not deleted, status not cancelled or
-- refunded. Written only by the rollup refresh (queries.RefreshRollup),
-- month by month and as generations (refresh_id), like customer_months;
-- regional_revenue and segment_performance read the months whose refresh
-- is current from here (a few hundred rows a month) and the rest from
-- customer_orders FINAL.
CREATE TABLE IF NOT EXISTS place_months
(
    month            Date,
    customer_segment LowCardinality(String),
    customer_region  LowCardinality(String),
    customer_country LowCardinality(String),
    sales            UInt64,
    revenue          Decimal(38, 2),
    customers        AggregateFunction(groupBitmap, UInt64),
    refresh_id       UInt64
)
ENGINE = MergeTree
PARTITION BY (toYYYYMM(month), refresh_id)
ORDER BY (customer_segment, customer_region, customer_country)
