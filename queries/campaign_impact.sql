-- @title Campaign impact
-- @question Orders, revenue and average order value before, during and after a campaign's window, over three periods of equal length (the window's).
-- @param campaign String : the campaign's code
-- @column period String : before, during, after
-- @column period_start DateTime64 : start of the period (UTC, inclusive)
-- @column period_end DateTime64 : end of the period (UTC, exclusive)
-- @column orders UInt64 : sales placed in the period (all sales, with or without the campaign)
-- @column campaign_orders UInt64 : of those, sales placed with this campaign
-- @column revenue Decimal : sum of the sales' totals (after discount)
-- @column avg_order_value Float64 : revenue / orders, rounded to cents (0 without orders)
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
WITH
    (
        SELECT (campaign_id, starts_at, ends_at)
        FROM campaigns FINAL
        WHERE code = {campaign:String} AND _is_deleted = 0
        ORDER BY campaign_id
        LIMIT 1
    ) AS camp,
    tupleElement(camp, 1) AS camp_id,
    tupleElement(camp, 2) AS w_start,
    tupleElement(camp, 3) AS w_end,
    dateDiff('microsecond', w_start, w_end) AS w_len,
    subtractMicroseconds(w_start, w_len) AS before_start,
    addMicroseconds(w_end, w_len) AS after_end
SELECT
    p.period AS period,
    p.period_start AS period_start,
    p.period_end AS period_end,
    o.orders AS orders,
    o.campaign_orders AS campaign_orders,
    o.revenue AS revenue,
    if(o.orders = 0, 0, round(toFloat64(o.revenue) / o.orders, 2)) AS avg_order_value
FROM
(
    SELECT
        tupleElement(t, 1) AS period,
        tupleElement(t, 2) AS ord,
        tupleElement(t, 3) AS period_start,
        tupleElement(t, 4) AS period_end
    FROM system.one
    ARRAY JOIN [('before', 1, before_start, w_start), ('during', 2, w_start, w_end), ('after', 3, w_end, after_end)] AS t
    WHERE camp_id != 0
) AS p
LEFT JOIN
(
    SELECT
        multiIf(placed_at < w_start, 'before', placed_at < w_end, 'during', 'after') AS period,
        count() AS orders,
        countIf(campaign_id = camp_id) AS campaign_orders,
        sum(total) AS revenue
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= before_start
      AND placed_at < after_end
    GROUP BY period
) AS o ON o.period = p.period
ORDER BY p.ord
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
