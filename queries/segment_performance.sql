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
GROUP BY segment
ORDER BY revenue DESC, segment
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
