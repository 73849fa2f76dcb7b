-- @title Sales by month and segment
-- @question Total sales per calendar month over a period, by customer segment (the customer's segment when the order was placed).
-- @param from Date = today-12m : first day of the period (UTC, inclusive)
-- @param to Date = today : last day of the period (UTC, inclusive)
-- @column month Date : first day of the month (UTC)
-- @column segment String : customer segment as of the order's placement
-- @column orders UInt64 : sales placed in the month
-- @column customers UInt64 : distinct customers with a sale in the month
-- @column revenue Decimal : sum of the sales' totals (after discount)
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
-- @rollup customer_months
-- The full months from {rollup_from} up to {rollup_to} come from the monthly
-- rollup (the runner passes the months whose rollup is current and their
-- refresh ids, see queries/rollup.go; pass equal dates and [] to read only
-- the facts), the rest of the period from the facts. The two never share a
-- month, so each month's distinct customers come from one side.
SELECT
    month,
    segment,
    sum(orders) AS orders,
    sum(customers) AS customers,
    sum(revenue) AS revenue
FROM
(
    SELECT
        month,
        customer_segment AS segment,
        sum(sales) AS orders,
        sum(first_in_segment) AS customers,
        sum(revenue) AS revenue
    FROM customer_months
    WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
    GROUP BY month, segment
    UNION ALL
    SELECT
        toStartOfMonth(placed_at) AS month,
        customer_segment AS segment,
        count() AS orders,
        uniqExact(customer_id) AS customers,
        sum(total) AS revenue
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
      AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
    GROUP BY month, segment
)
GROUP BY month, segment
ORDER BY month, segment
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
