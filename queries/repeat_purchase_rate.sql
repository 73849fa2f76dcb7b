-- @title Repeat purchase rate
-- @question The share of customers with a sale in a window (by default the last six months) who made at least two.
-- @param from Date = today-6m : first day of the window (UTC, inclusive)
-- @param to Date = today : last day of the window (UTC, inclusive)
-- @column customers UInt64 : customers with at least one sale in the window
-- @column repeat_customers UInt64 : customers with at least two sales in the window
-- @column one_time_customers UInt64 : customers with exactly one sale in the window
-- @column repeat_rate Float64 : repeat_customers / customers (0 when there are no customers), 4 decimals
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
SELECT
    count() AS customers,
    countIf(orders >= 2) AS repeat_customers,
    countIf(orders = 1) AS one_time_customers,
    if(customers = 0, 0, round(repeat_customers / customers, 4)) AS repeat_rate
FROM
(
    SELECT customer_id, count() AS orders
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
    GROUP BY customer_id
)
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
