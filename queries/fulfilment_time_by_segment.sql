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
    segment,
    shipped_orders,
    round(ship_avg, 2) AS ship_avg_hours,
    round(ship_q[1], 2) AS ship_p50_hours,
    round(ship_q[2], 2) AS ship_p90_hours,
    delivered_orders,
    if(delivered_orders = 0, NULL, round(deliver_avg, 2)) AS deliver_avg_hours,
    if(delivered_orders = 0, NULL, round(deliver_q[1], 2)) AS deliver_p50_hours,
    if(delivered_orders = 0, NULL, round(deliver_q[2], 2)) AS deliver_p90_hours
FROM
(
    -- one sort per measure for both percentiles
    SELECT
        customer_segment AS segment,
        count() AS shipped_orders,
        avg(ship_h) AS ship_avg,
        quantilesExactInclusive(0.5, 0.9)(ship_h) AS ship_q,
        countIf(delivered) AS delivered_orders,
        avgIf(deliver_h, delivered) AS deliver_avg,
        quantilesExactInclusiveIf(0.5, 0.9)(deliver_h, delivered) AS deliver_q
    FROM
    (
        SELECT
            customer_segment,
            (toUnixTimestamp64Micro(assumeNotNull(shipped_at)) - toUnixTimestamp64Micro(placed_at)) / 3600e6 AS ship_h,
            delivered_at IS NOT NULL AS delivered,
            (toUnixTimestamp64Micro(assumeNotNull(delivered_at)) - toUnixTimestamp64Micro(placed_at)) / 3600e6 AS deliver_h
        FROM customer_orders FINAL
        WHERE _is_deleted = 0
          AND shipped_at IS NOT NULL
          AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
          AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
    )
    GROUP BY segment
)
ORDER BY segment
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
