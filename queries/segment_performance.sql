-- @title Segment performance
-- @question Per customer segment (as of each order's placement): revenue, orders, customers, average order value and orders per customer.
-- @param from Date = today-12m : first day of the period (UTC, inclusive)
-- @param to Date = today : last day of the period (UTC, inclusive)
-- @column segment String : customer segment as of the order's placement
-- @column revenue Decimal : sum of the sales' totals
-- @column orders UInt64 : sales
-- @column customers UInt64 : distinct customers with a sale in the segment (a customer who changed segment counts in each)
-- @column avg_order_value Float64 : revenue / orders, rounded to cents
-- @column orders_per_customer Float64 : orders / customers, rounded to 2 decimals
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
-- @rollup place_months
-- Two branches, one of them empty. Without rollup months ({rollup_from} =
-- {rollup_to}: none is current, or the period has no whole month) the
-- first reads the facts alone with a distinct count. Otherwise the second
-- reads the full months from {rollup_from} up to {rollup_to} from the
-- monthly rollup (the runner passes the months whose rollup is current and
-- their refresh ids, see queries/rollup.go; pass equal dates and [] to read
-- only the facts) and the rest of the period from the facts; both sides
-- give the customers as a bitmap of their ids, and the union of the
-- bitmaps counts each customer once across months and sides (on raw rows a
-- bitmap costs twice a distinct count, hence the first branch).
SELECT *
FROM
(
    SELECT
        customer_segment AS segment,
        sum(total) AS revenue,
        count() AS orders,
        uniqExact(customer_id) AS customers,
        round(toFloat64(revenue) / orders, 2) AS avg_order_value,
        round(orders / customers, 2) AS orders_per_customer
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
      AND {rollup_from:Date} = {rollup_to:Date}
    GROUP BY segment
    UNION ALL
    SELECT
        segment,
        revenue,
        orders,
        customers,
        round(toFloat64(revenue) / orders, 2) AS avg_order_value,
        round(orders / customers, 2) AS orders_per_customer
    FROM
    (
        SELECT
            customer_segment AS segment,
            sum(revenue) AS revenue,
            sum(sales) AS orders,
            groupBitmapMerge(customers) AS customers
        FROM
        (
            SELECT customer_segment, customer_region, customer_country, sales, revenue, customers
            FROM place_months
            WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
            UNION ALL
            SELECT customer_segment, customer_region, customer_country, count() AS sales, sum(total) AS revenue,
                groupBitmapState(toUInt64(customer_id)) AS customers
            FROM customer_orders FINAL
            WHERE _is_deleted = 0
              AND status NOT IN ('cancelled', 'refunded')
              AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
              AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
              AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
              AND {rollup_from:Date} < {rollup_to:Date}
            GROUP BY customer_segment, customer_region, customer_country
        )
        GROUP BY segment
    )
)
ORDER BY revenue DESC, segment
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
