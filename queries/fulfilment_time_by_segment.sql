-- @title Fulfilment time by segment
-- @question Per customer segment (as of placement): hours from placed to shipped and from placed to delivered, average, median (p50) and p90.
-- @param from Date = today-3m : first day orders were placed (UTC, inclusive)
-- @param to Date = today : last day orders were placed (UTC, inclusive)
-- @column segment String : customer segment as of the order's placement
-- @column shipped_orders UInt64 : orders placed in the period that have shipped
-- @column ship_avg_hours Float64 : average placed -> shipped hours
-- @column ship_p50_hours Float64 : median placed -> shipped hours (exact, linearly interpolated like PostgreSQL's percentile_cont)
-- @column ship_p90_hours Float64 : 90th percentile placed -> shipped hours
-- @column delivered_orders UInt64 : orders placed in the period that have been delivered
-- @column deliver_avg_hours Nullable(Float64) : average placed -> delivered hours (NULL without deliveries)
-- @column deliver_p50_hours Nullable(Float64) : median placed -> delivered hours
-- @column deliver_p90_hours Nullable(Float64) : 90th percentile placed -> delivered hours
-- @sale Fulfilment is measured on every order placed in the period that is not deleted and reached the step (refunded orders that shipped included; a cancelled order never ships). Elsewhere a sale is an order not deleted, not cancelled or refunded.
SELECT
    toString(customer_segment) AS segment,
    count() AS shipped_orders,
    round(avg(ship_h), 2) AS ship_avg_hours,
    round(quantileExactInclusive(0.5)(ship_h), 2) AS ship_p50_hours,
    round(quantileExactInclusive(0.9)(ship_h), 2) AS ship_p90_hours,
    count(deliver_h) AS delivered_orders,
    round(avg(deliver_h), 2) AS deliver_avg_hours,
    round(quantileExactInclusive(0.5)(deliver_h), 2) AS deliver_p50_hours,
    round(quantileExactInclusive(0.9)(deliver_h), 2) AS deliver_p90_hours
FROM
(
    SELECT
        customer_segment,
        (toUnixTimestamp64Micro(assumeNotNull(shipped_at)) - toUnixTimestamp64Micro(placed_at)) / 3600e6 AS ship_h,
        (toUnixTimestamp64Micro(delivered_at) - toUnixTimestamp64Micro(placed_at)) / 3600e6 AS deliver_h
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND shipped_at IS NOT NULL
      AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
)
GROUP BY segment
ORDER BY segment
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
