-- Rollup of customer_orders' sales: one row per calendar month (UTC) of
-- placed_at, customer, and the customer's segment, region and country as of
-- placement, with the month's sales, revenue and latest sale. A sale is what
-- every report counts as one: not deleted, status not cancelled or refunded;
-- its value is total. first_in_segment = 1 on exactly one row per (month,
-- customer, segment), so "customers per month and segment" is a sum, not a
-- distinct count.
--
-- Written only by the rollup refresh (queries.RefreshRollup): each refresh
-- of a month computes it from customer_orders FINAL as a new generation
-- (a fresh refresh_id, part of the partition key) and records it in
-- rollup_refreshes with the fingerprint of the facts' month partition it
-- was computed from. A report reads a month from here (that generation
-- only) while the fingerprint is still the facts' one; every other month
-- (changed since, or cut by the period) it reads from the facts, so the
-- answer is the same either way. About 20 % fewer rows than the facts and
-- no FINAL.
--
-- PARTITION BY (month, refresh_id): a generation is written once, read by
-- partition, and dropped whole once superseded. ORDER BY customer_id
-- first: the per-customer reports group by it.
CREATE TABLE IF NOT EXISTS customer_months
(
    month            Date,
    customer_id      Int64,
    customer_segment LowCardinality(String),
    customer_region  LowCardinality(String),
    customer_country LowCardinality(String),
    sales            UInt32,
    revenue          Decimal(18, 2),
    last_sale_at     DateTime64(6, 'UTC'),
    first_in_segment UInt8,
    refresh_id       UInt64
)
ENGINE = MergeTree
PARTITION BY (toYYYYMM(month), refresh_id)
ORDER BY (customer_id, customer_segment, customer_region, customer_country)
