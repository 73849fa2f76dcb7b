-- @title Daily sales
-- @question Purchases per day between two dates; days without a sale are listed with zeros.
-- @param from Date = today-30d : first day (UTC, inclusive)
-- @param to Date = today : last day (UTC, inclusive)
-- @column day Date : the day (UTC)
-- @column orders UInt64 : sales placed that day
-- @column customers UInt64 : distinct customers with a sale that day
-- @column units UInt64 : units (item quantities) sold that day
-- @column revenue Decimal : sum of the sales' totals (after discount)
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
SELECT
    toDate(placed_at) AS day,
    count() AS orders,
    uniqExact(customer_id) AS customers,
    sum(toUInt64(units)) AS units,
    sum(total) AS revenue
FROM customer_orders FINAL
WHERE _is_deleted = 0
  AND status NOT IN ('cancelled', 'refunded')
  AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
  AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
GROUP BY day
ORDER BY day WITH FILL FROM {from:Date} TO {to:Date} + 1 STEP 1
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
