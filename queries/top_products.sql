-- @title Top products
-- @question The top N products of a period by order count and by revenue: every product in either top N, with its rank in both.
-- @param from Date = today-30d : first day of the period (UTC, inclusive)
-- @param to Date = today : last day of the period (UTC, inclusive)
-- @param n UInt32 = 10 : how many products each ranking keeps
-- @column rank_by_revenue UInt64 : 1 = highest revenue (ties: more orders, then lower product id)
-- @column rank_by_orders UInt64 : 1 = most orders (ties: more revenue, then lower product id)
-- @column product_id Int64 : product id
-- @column sku String : current SKU
-- @column name String : current product name
-- @column category String : current category
-- @column orders UInt64 : sales containing the product (an order listing it on two lines counts once: sum of product_first, set on the first live line of each product in an order)
-- @column units Int64 : units sold
-- @column revenue Decimal : sum of the product's line totals (quantity x unit price - line discount) in sales
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
-- @rollup product_months
-- The full months from {rollup_from} up to {rollup_to} come from the monthly
-- rollup (the runner passes the months whose rollup is current and their
-- refresh ids, see queries/rollup.go; pass equal dates and [] to read only
-- the facts), the rest of the period from the order lines. Every count and
-- sum here adds up across months (an order is in one month), so the two
-- sides just add.
WITH per_product AS
(
    SELECT
        product_id,
        sum(orders) AS orders,
        sum(units) AS units,
        sum(revenue) AS revenue
    FROM
    (
        SELECT product_id, orders, units, revenue
        FROM product_months
        WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
        UNION ALL
        SELECT product_id, toUInt64(product_first) AS orders, toInt64(quantity) AS units, toDecimal128(line_total, 2) AS revenue
        FROM order_lines FINAL
        WHERE _is_deleted = 0
          AND status NOT IN ('cancelled', 'refunded')
          AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
          AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
          AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
    )
    GROUP BY product_id
),
ranked AS
(
    SELECT
        product_id, orders, units, revenue,
        row_number() OVER (ORDER BY revenue DESC, orders DESC, product_id ASC) AS rank_by_revenue,
        row_number() OVER (ORDER BY orders DESC, revenue DESC, product_id ASC) AS rank_by_orders
    FROM per_product
)
SELECT
    r.rank_by_revenue AS rank_by_revenue,
    r.rank_by_orders AS rank_by_orders,
    r.product_id AS product_id,
    p.sku AS sku,
    p.name AS name,
    p.category AS category,
    r.orders AS orders,
    r.units AS units,
    r.revenue AS revenue
FROM ranked AS r
LEFT JOIN (SELECT product_id, sku, name, category FROM products FINAL WHERE _is_deleted = 0) AS p ON p.product_id = r.product_id
WHERE r.rank_by_revenue <= {n:UInt32} OR r.rank_by_orders <= {n:UInt32}
ORDER BY rank_by_revenue, rank_by_orders
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
