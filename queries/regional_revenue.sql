-- @title Regional revenue
-- @question Revenue by region and country (the customer's, as of each order's placement) with the customer mix: customers, average order value and sales per segment.
-- @param from Date = today-12m : first day of the period (UTC, inclusive)
-- @param to Date = today : last day of the period (UTC, inclusive)
-- @column region String : customer region as of placement
-- @column country String : customer country (ISO 3166-1 alpha-2) as of placement
-- @column customers UInt64 : distinct customers with a sale
-- @column orders UInt64 : sales
-- @column revenue Decimal : sum of the sales' totals
-- @column avg_order_value Float64 : revenue / orders, rounded to cents
-- @column revenue_share Float64 : the country's share of the period's revenue, 4 decimals
-- @column bronze_orders UInt64 : sales by bronze customers
-- @column silver_orders UInt64 : sales by silver customers
-- @column gold_orders UInt64 : sales by gold customers
-- @column platinum_orders UInt64 : sales by platinum customers
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
        customer_region AS region,
        customer_country AS country,
        uniqExact(customer_id) AS customers,
        count() AS orders,
        sum(total) AS revenue,
        round(toFloat64(revenue) / orders, 2) AS avg_order_value,
        round(toFloat64(revenue) / sum(toFloat64(revenue)) OVER (), 4) AS revenue_share,
        countIf(customer_segment = 'bronze') AS bronze_orders,
        countIf(customer_segment = 'silver') AS silver_orders,
        countIf(customer_segment = 'gold') AS gold_orders,
        countIf(customer_segment = 'platinum') AS platinum_orders
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
      AND {rollup_from:Date} = {rollup_to:Date}
    GROUP BY region, country
    UNION ALL
    SELECT
        region,
        country,
        customers,
        orders,
        revenue,
        round(toFloat64(revenue) / orders, 2) AS avg_order_value,
        round(toFloat64(revenue) / sum(toFloat64(revenue)) OVER (), 4) AS revenue_share,
        bronze_orders,
        silver_orders,
        gold_orders,
        platinum_orders
    FROM
    (
        SELECT
            customer_region AS region,
            customer_country AS country,
            groupBitmapMerge(customers) AS customers,
            sum(sales) AS orders,
            sum(revenue) AS revenue,
            sumIf(sales, customer_segment = 'bronze') AS bronze_orders,
            sumIf(sales, customer_segment = 'silver') AS silver_orders,
            sumIf(sales, customer_segment = 'gold') AS gold_orders,
            sumIf(sales, customer_segment = 'platinum') AS platinum_orders
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
        GROUP BY region, country
    )
)
ORDER BY revenue DESC, region, country
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
